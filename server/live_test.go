package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"faas/client"
	"faas/samples"
	"faas/server"
	"faas/store"
	"faas/task"
)

// TestWorkersAndHealth: /healthz is degraded (still 200) with no dispatcher and ok with
// one; GET /workers lists it; with API keys only an admin key reads /workers.
func TestWorkersAndHealth(t *testing.T) {
	e := newEnv(t, server.Config{})
	ctx := ctxT(t)
	a := e.get(t, "/healthz").want(t, http.StatusOK)
	if a.str("status") != "degraded" || !strings.Contains(a.str("reason"), "no dispatcher") {
		t.Fatalf("healthz without a dispatcher: %s", a.raw)
	}
	w := e.get(t, "/workers").want(t, http.StatusOK)
	if string(w.raw) != `{"dispatchers":[],"healthy":false,"reason":"`+a.str("reason")+`"}`+"\n" {
		t.Fatalf("/workers without a dispatcher: %s", w.raw)
	}
	now := time.Now().UTC()
	d := store.Dispatcher{ID: "host-1", Mode: "push", Address: "127.0.0.1:5555", Version: "v", StartedAt: now, HeardAt: now,
		Slots: 2, Running: 1, Workers: []store.LiveWorker{{ID: "w", Slots: 2, Running: 1, Done: 5, HeardAt: now}}}
	if err := e.st.PublishDispatcher(ctx, d, time.Minute); err != nil {
		t.Fatal(err)
	}
	if a := e.get(t, "/healthz").want(t, http.StatusOK); string(a.raw) != `{"status":"ok"}`+"\n" {
		t.Fatalf("healthz with a dispatcher: %s", a.raw)
	}
	got, err := e.c.Workers(ctx)
	if err != nil || !got.Healthy || got.Reason != "" || len(got.Dispatchers) != 1 ||
		got.Dispatchers[0].ID != "host-1" || got.Dispatchers[0].Workers[0].Done != 5 {
		t.Fatalf("Workers = %+v, %v", got, err)
	}

	ring, err := server.ParseKeys(strings.NewReader("A "+keyA+"\nops "+keyB+" admin=true\n"), server.Quota{})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetKeys(ring)
	e.as(t, keyA, http.MethodGet, "/workers", "", nil).wantError(t, http.StatusForbidden, "forbidden", "admin=true")
	e.as(t, "", http.MethodGet, "/workers", "", nil).wantError(t, http.StatusUnauthorized, "unauthorized")
	if a := e.as(t, keyB, http.MethodGet, "/workers", "", nil).want(t, http.StatusOK); !strings.Contains(string(a.raw), `"id":"host-1"`) {
		t.Fatalf("admin /workers: %s", a.raw)
	}
	if _, err := server.ParseKeys(strings.NewReader("A "+keyA+" admin=maybe\n"), server.Quota{}); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("admin=maybe: %v", err)
	}
}

// TestFunctionLogsEndpoint: the log of a function's outcomes as a JSON array (since,
// failed, limit), as server-sent events when following, namespaced, with followers bounded.
func TestFunctionLogsEndpoint(t *testing.T) {
	ring, err := server.ParseKeys(strings.NewReader("A "+keyA+"\nB "+keyB+"\n"), server.Quota{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, server.Config{Keys: ring, MaxLogFollowers: 3, MaxLogFollowersPerNamespace: 2})
	ctx := ctxT(t)
	ca := client.New(e.url, client.WithAPIKey(keyA))
	fn := e.registerAs(t, keyA, "double", samples.DoubleWAT)
	for _, in := range []string{"1", "x"} {
		e.executeAs(t, keyA, fn, in).want(t, http.StatusCreated)
	}
	e.finish(t, func(tk task.Task) task.Outcome {
		if string(tk.Input) == "x" {
			return failOutcome(tk)
		}
		return echoOutcome(tk)
	})
	all, err := ca.Logs(ctx, "double", client.LogOptions{})
	if err != nil || len(all) != 2 || all[0].Status != "COMPLETED" || all[1].Status != "FAILED" ||
		all[1].Kind != "exit" || string(all[1].Stderr) != "bad input\n" || all[1].FunctionID != fn {
		t.Fatalf("Logs = %+v, %v", all, err)
	}
	if f, err := ca.Logs(ctx, fn, client.LogOptions{Failed: true, Since: time.Minute}); err != nil || len(f) != 1 || f[0].Status != "FAILED" {
		t.Fatalf("failed only = %+v, %v", f, err)
	}
	if l, err := ca.Logs(ctx, fn, client.LogOptions{Limit: 1}); err != nil || len(l) != 1 || l[0].Status != "FAILED" {
		t.Fatalf("limit 1 = %+v, %v", l, err)
	}
	// Namespaced: B does not see A's function, by name or id.
	for _, key := range []string{"double", fn} {
		e.as(t, keyB, http.MethodGet, "/functions/"+key+"/logs", "", nil).wantError(t, http.StatusNotFound, "not_found")
	}
	for _, q := range []string{"since=soon", "since=-1m", "since=100h", "failed=maybe", "follow=2", "limit=0", "limit=1001"} {
		e.as(t, keyA, http.MethodGet, "/functions/double/logs?"+q, "", nil).wantError(t, http.StatusBadRequest, "bad_request", strings.Split(q, "=")[0])
	}

	// A client that reconnects with Last-Event-ID resumes after that entry, without history.
	resume := func(lastID string) (status int, firstData string) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, e.url+"/functions/double/logs?follow=1", nil)
		req.Header.Set("Authorization", "Bearer "+keyA)
		req.Header.Set("Last-Event-ID", lastID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, ""
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				return resp.StatusCode, d
			}
		}
		return resp.StatusCode, ""
	}
	if status, data := resume(all[0].ID); status != http.StatusOK || !strings.Contains(data, all[1].TaskID) {
		t.Fatalf("resumed after the first entry: %d %s; want the second (%s)", status, data, all[1].TaskID)
	}
	if status, _ := resume("$"); status != http.StatusBadRequest {
		t.Fatalf("Last-Event-ID $: %d, want 400", status)
	}

	// Following: the history, then each new outcome.
	fctx, stop := context.WithCancel(ctx)
	got := make(chan client.LogEntry, 10)
	followed := make(chan error, 1)
	go func() {
		followed <- ca.FollowLogs(fctx, "double", client.LogOptions{Failed: true}, func(le client.LogEntry, raw json.RawMessage) error {
			got <- le
			return nil
		})
	}()
	if h := <-got; h.Status != "FAILED" {
		t.Fatalf("history entry %+v", h)
	}
	// Bounds: a second follower of A fits, a third of A does not (429); one of B does, and
	// the fourth of the server does not (503).
	second, stop2 := context.WithCancel(ctx)
	defer stop2()
	go ca.FollowLogs(second, "double", client.LogOptions{}, func(client.LogEntry, json.RawMessage) error { return nil })
	waitFollowers(t, ca, "double")
	var ae *client.APIError
	if err := ca.FollowLogs(ctx, "double", client.LogOptions{}, nil); !errors.As(err, &ae) || ae.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a third follower of the namespace: %v", err)
	}
	cb := client.New(e.url, client.WithAPIKey(keyB))
	e.registerAs(t, keyB, "b", samples.DoubleWAT)
	go cb.FollowLogs(second, "b", client.LogOptions{}, func(client.LogEntry, json.RawMessage) error { return nil })
	deadline := time.Now().Add(10 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := cb.FollowLogs(actx, "b", client.LogOptions{}, nil)
		cancel()
		if errors.As(err, &ae) && ae.StatusCode == http.StatusServiceUnavailable && ae.RetryAfter > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a fourth follower of the server: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.executeAs(t, keyA, fn, "y").want(t, http.StatusCreated)
	e.finish(t, failOutcome)
	select {
	case le := <-got:
		if le.Status != "FAILED" || string(le.Stderr) != "bad input\n" {
			t.Fatalf("followed %+v", le)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the new outcome was not followed")
	}
	stop()
	if err := <-followed; !errors.Is(err, context.Canceled) {
		t.Fatalf("FollowLogs after cancel: %v", err)
	}
}

// waitFollowers waits until a further follower of A is refused (the second is counted).
func waitFollowers(t *testing.T, c *client.Client, fn string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.FollowLogs(ctx, fn, client.LogOptions{}, func(client.LogEntry, json.RawMessage) error { return nil })
		cancel()
		var ae *client.APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusTooManyRequests {
			return
		}
	}
	t.Fatal("the second follower was never counted")
}
