package server_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"faas/samples"
	"faas/server"
	"faas/store"
	"faas/task"
)

// TestDashboardEndpoints runs 3 tasks of a function (2 completed, 1 failed) and reads them
// back from every dashboard endpoint, then checks their refusals and the page's headers.
func TestDashboardEndpoints(t *testing.T) {
	e := newEnv(t, server.Config{})
	fid := e.register(t, "echo", samples.Echo, nil)
	var ids []string
	for _, in := range []string{"a", "b", "bad"} {
		ids = append(ids, e.execute(t, fid, []byte(in)))
	}
	q := e.get(t, "/tasks?status=QUEUED&function=echo").want(t, http.StatusOK)
	if qs := q.obj["tasks"].([]any); len(qs) != 3 || qs[0].(map[string]any)["task_id"] != ids[0] {
		t.Fatalf("queued tasks, the next to run first: %s", q.raw)
	}
	e.finish(t, func(tk task.Task) task.Outcome {
		if string(tk.Input) == "bad" {
			return failOutcome(tk)
		}
		return echoOutcome(tk)
	})

	running := e.execute(t, fid, []byte("c"))
	if ts, err := e.st.Claim(ctxT(t), "test", 1); err != nil || len(ts) != 1 {
		t.Fatalf("Claim: %v %v", ts, err)
	}
	r := e.get(t, "/tasks?status=RUNNING").want(t, http.StatusOK)
	if rs := r.obj["tasks"].([]any); len(rs) != 1 || rs[0].(map[string]any)["task_id"] != running {
		t.Fatalf("running tasks: %s", r.raw)
	}
	o := e.get(t, "/stats/overview").want(t, http.StatusOK)
	if o.obj["namespace"] != "default" || o.obj["completed"] != 2.0 || o.obj["failed"] != 1.0 || o.obj["queued"] != 0.0 ||
		o.obj["running"] != 1.0 {
		t.Fatalf("overview: %s", o.raw)
	}
	series := o.obj["series"].(map[string]any)
	if n := len(series["start"].([]any)); n != 360 || len(series["p99_ms"].([]any)) != n {
		t.Fatalf("series of %d intervals: %s", n, o.raw)
	}

	f := e.get(t, "/stats/functions").want(t, http.StatusOK)
	fns := f.obj["functions"].([]any)
	row := fns[0].(map[string]any)
	if len(fns) != 1 || row["function_id"] != fid || row["tasks_last_hour"] != 3.0 || row["failed"] != 1.0 ||
		row["name"] != "echo" || row["module_size"] != float64(len(samples.Echo)) {
		t.Fatalf("functions: %s", f.raw)
	}

	l := e.get(t, "/tasks?status=FAILED&function=echo&limit=10").want(t, http.StatusOK)
	ts := l.obj["tasks"].([]any)
	if len(ts) != 1 || ts[0].(map[string]any)["status"] != "FAILED" || l.obj["next_cursor"] != "" {
		t.Fatalf("failed tasks: %s", l.raw)
	}
	l = e.get(t, "/tasks?limit=2").want(t, http.StatusOK)
	cur, _ := l.obj["next_cursor"].(string)
	if len(l.obj["tasks"].([]any)) != 2 || cur == "" {
		t.Fatalf("first page: %s", l.raw)
	}
	l = e.get(t, "/tasks?limit=2&cursor="+cur).want(t, http.StatusOK)
	if len(l.obj["tasks"].([]any)) != 1 || l.obj["next_cursor"] != "" {
		t.Fatalf("second page: %s", l.raw)
	}

	fl := e.get(t, "/functions/"+fid+"/failures").want(t, http.StatusOK)
	kinds := fl.obj["kinds"].([]any)
	k := kinds[0].(map[string]any)
	if len(kinds) != 1 || k["kind"] != "exit" || k["count"] != 1.0 || k["sample_stderr"] != b64([]byte("bad input\n")) {
		t.Fatalf("failures: %s", fl.raw)
	}

	for path, msg := range map[string]string{
		"/tasks?status=DONE":              "QUEUED, RUNNING, COMPLETED or FAILED",
		"/tasks?status=QUEUED&cursor=1_x": "finished tasks only",
		"/tasks?limit=0":                  "limit",
		"/tasks?since=yesterday":          "RFC 3339",
		"/tasks?cursor=xyz":               "cursor",
	} {
		e.get(t, path).wantError(t, http.StatusBadRequest, "bad_request", msg)
	}
	e.get(t, "/tasks?function=nope").wantError(t, http.StatusNotFound, "not_found", "nope")
	e.get(t, "/functions/nope/failures").wantError(t, http.StatusNotFound, "not_found")

	resp, err := http.Get(e.url + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != http.StatusOK || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
		h.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("/ui/: %d %v", resp.StatusCode, h)
	}
}

// TestDashboardKeys: with keys, the page's files load without one (they hold no data), and
// every dashboard endpoint needs one and shows only its namespace.
func TestDashboardKeys(t *testing.T) {
	const keyA, keyB = "key-of-namespace-a-0123456789abcdef", "key-of-namespace-b-0123456789abcdef"
	ring, err := server.ParseKeys(strings.NewReader("A "+keyA+"\nB "+keyB+"\n"), server.Quota{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, server.Config{Keys: ring})
	for _, p := range []string{"/ui/", "/ui/app.js", "/ui/uPlot.iife.min.js"} {
		resp, err := http.Get(e.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s without a key: %d", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/stats/overview", "/stats/functions", "/tasks"} {
		e.get(t, p).wantError(t, http.StatusUnauthorized, "unauthorized")
	}
	get := func(key, path string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	req, _ := http.NewRequest(http.MethodPost, e.url+"/register_function?name=onlyA", strings.NewReader(string(samples.Echo)))
	req.Header.Set("Authorization", "Bearer "+keyA)
	req.Header.Set("Content-Type", "application/wasm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("register in A: %v %v", resp, err)
	}
	resp.Body.Close()
	for key, want := range map[string]string{keyA: `"name":"onlyA"`, keyB: `"functions":[]`} {
		resp := get(key, "/stats/functions")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), want) {
			t.Fatalf("functions of %s…: %s, want %s", key[:16], body, want)
		}
	}
}

// TestTaskInput: GET /tasks/{id}/input gives a task's input while it is queued, and after it
// ends only an input of at most store.InputKept bytes; other ids are 404.
func TestTaskInput(t *testing.T) {
	e := newEnv(t, server.Config{})
	fid := e.register(t, "echo", samples.Echo, nil)
	small := e.execute(t, fid, []byte("hello"))
	big := e.execute(t, fid, bytes.Repeat([]byte("x"), store.InputKept+1))
	q := e.get(t, "/tasks/"+big+"/input").want(t, http.StatusOK)
	if q.obj["function_id"] != fid || q.obj["payload"] != base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), store.InputKept+1)) {
		t.Fatalf("a queued task's input: %s", q.raw)
	}
	e.finish(t, echoOutcome)
	a := e.get(t, "/tasks/"+small+"/input").want(t, http.StatusOK)
	if a.obj["task_id"] != small || a.obj["payload"] != base64.StdEncoding.EncodeToString([]byte("hello")) {
		t.Fatalf("a finished task's small input: %s", a.raw)
	}
	e.get(t, "/tasks/"+big+"/input").want(t, http.StatusNotFound)
	e.get(t, "/tasks/00000000-0000-4000-8000-000000000000/input").want(t, http.StatusNotFound)
	e.get(t, "/tasks/not-a-uuid/input").want(t, http.StatusNotFound)
}
