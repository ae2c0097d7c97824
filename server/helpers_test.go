package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"faas/client"
	"faas/internal/redistest"
	"faas/sandbox"
	"faas/server"
	"faas/store"
	"faas/task"
)

var prefixes atomic.Int64

// env is a server on a real redis-server, served by httptest.
type env struct {
	redis *redistest.Server
	st    *store.Store
	done  *store.Done
	sb    *sandbox.Sandbox
	srv   *server.Server
	url   string
	c     *client.Client
}

func newEnv(tb testing.TB, cfg server.Config) *env {
	tb.Helper()
	rs := redistest.Start(tb)
	rdb, err := store.Open(rs.URL)
	if err != nil {
		tb.Fatalf("store.Open: %v", err)
	}
	tb.Cleanup(func() { rdb.Close() })
	st := store.New(rdb, store.Config{Prefix: fmt.Sprintf("st%d:", prefixes.Add(1))})
	ctx, cancel := context.WithCancel(context.Background())
	sb, err := sandbox.New(ctx, sandbox.Config{})
	if err != nil {
		tb.Fatalf("sandbox.New: %v", err)
	}
	done := st.NewDone()
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = done.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		<-stopped
		sb.Close(context.Background())
	})
	select {
	case <-done.Ready():
	case <-time.After(10 * time.Second):
		tb.Fatal("the done subscription did not start")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(tWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := server.New(st, sb, done, cfg, log)
	hs := httptest.NewServer(srv.Handler())
	tb.Cleanup(hs.Close)
	return &env{redis: rs, st: st, done: done, sb: sb, srv: srv, url: hs.URL, c: client.New(hs.URL)}
}

type tWriter struct{ tb testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func ctxT(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// answer is an HTTP answer, its body kept raw and decoded as a JSON object.
type answer struct {
	status int
	raw    []byte
	obj    map[string]any
	header http.Header
}

func (e *env) do(tb testing.TB, method, path, contentType string, body []byte) answer {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctxT(tb), method, e.url+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	a := answer{status: resp.StatusCode, raw: raw, header: resp.Header}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		tb.Fatalf("%s %s: Content-Type %q, want application/json (body %s)", method, path, ct, raw)
	}
	if err := json.Unmarshal(raw, &a.obj); err != nil {
		tb.Fatalf("%s %s: body is not a JSON object: %v: %s", method, path, err, raw)
	}
	return a
}

func (e *env) postJSON(tb testing.TB, path, body string) answer {
	tb.Helper()
	return e.do(tb, http.MethodPost, path, "application/json", []byte(body))
}

func (e *env) get(tb testing.TB, path string) answer {
	tb.Helper()
	return e.do(tb, http.MethodGet, path, "", nil)
}

// wantError checks an error answer: status, code, and a message containing each of msg.
func (a answer) wantError(tb testing.TB, status int, code string, msg ...string) {
	tb.Helper()
	if a.status != status {
		tb.Fatalf("status %d, want %d: %s", a.status, status, a.raw)
	}
	e, ok := a.obj["error"].(map[string]any)
	if !ok || len(a.obj) != 1 {
		tb.Fatalf("want exactly {\"error\": {...}}, got %s", a.raw)
	}
	if e["code"] != code {
		tb.Fatalf("code %v, want %s: %s", e["code"], code, a.raw)
	}
	m, _ := e["message"].(string)
	if m == "" {
		tb.Fatalf("empty message: %s", a.raw)
	}
	for _, s := range msg {
		if !strings.Contains(m, s) {
			tb.Fatalf("message %q does not mention %q", m, s)
		}
	}
}

func (a answer) want(tb testing.TB, status int) answer {
	tb.Helper()
	if a.status != status {
		tb.Fatalf("status %d, want %d: %s", a.status, status, a.raw)
	}
	return a
}

func (a answer) str(key string) string { s, _ := a.obj[key].(string); return s }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func jsonBody(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// register registers wasm under name through the API and returns its id.
func (e *env) register(tb testing.TB, name string, wasm []byte, limits map[string]any) string {
	tb.Helper()
	body := map[string]any{"name": name, "payload": b64(wasm)}
	if limits != nil {
		body["limits"] = limits
	}
	a := e.postJSON(tb, "/register_function", jsonBody(body)).want(tb, http.StatusCreated)
	id := a.str("function_id")
	if len(id) != 36 {
		tb.Fatalf("function_id %q is not a uuid", id)
	}
	return id
}

func (e *env) execute(tb testing.TB, fnID string, input []byte) string {
	tb.Helper()
	a := e.postJSON(tb, "/execute_function",
		jsonBody(map[string]any{"function_id": fnID, "payload": b64(input)})).want(tb, http.StatusCreated)
	id := a.str("task_id")
	if len(id) != 36 {
		tb.Fatalf("task_id %q is not a uuid", id)
	}
	return id
}

// finish claims every queued task and completes each with out(task) as its outcome, as a
// dispatcher would. It returns the tasks claimed, in queue order.
func (e *env) finish(tb testing.TB, out func(task.Task) task.Outcome) []task.Task {
	tb.Helper()
	ctx := ctxT(tb)
	ts, err := e.st.Claim(ctx, "test", 100000)
	if err != nil {
		tb.Fatalf("Claim: %v", err)
	}
	outs := make([]task.Outcome, len(ts))
	for i, t := range ts {
		outs[i] = out(t)
		outs[i].Ref = t.Ref()
	}
	if len(outs) > 0 {
		if _, err := e.st.Complete(ctx, outs); err != nil {
			tb.Fatalf("Complete: %v", err)
		}
	}
	return ts
}

// echoOutcome completes a task with its input reversed-free copy as stdout.
func echoOutcome(t task.Task) task.Outcome {
	return task.Outcome{Stdout: append([]byte("out:"), t.Input...), Duration: 3 * time.Millisecond, Worker: "test"}
}

func failOutcome(t task.Task) task.Outcome {
	return task.Outcome{Failure: &task.Failure{Kind: task.KindExit, Message: "exit code 2"},
		Stderr: []byte("bad input\n"), Duration: time.Millisecond, Worker: "test"}
}

func sandboxLimits(stdin int64) task.Limits { return task.Limits{StdinBytes: stdin} }
