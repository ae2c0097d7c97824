package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"faas/samples"
	"faas/server"
)

// rawUpload starts a raw-module registration announcing total bytes and sends the first
// sent of them, then stalls. It returns the connection (the caller closes it) and a channel
// that gets the server's answer if one comes.
func rawUpload(t *testing.T, url string, total, sent int) (net.Conn, <-chan *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	answers := make(chan *http.Response, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			answers <- resp
		}
	}()
	head := fmt.Sprintf("POST /register_function?name=big HTTP/1.1\r\nHost: x\r\n"+
		"Content-Type: application/wasm\r\nContent-Length: %d\r\n\r\n", total)
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 32<<10)
	for n := 0; n < sent; n += len(chunk) {
		if _, err := conn.Write(chunk[:min(len(chunk), sent-n)]); err != nil {
			break // the server answered and closed: the answer is on the channel
		}
	}
	return conn, answers
}

// Stalled uploads hold at most the body budget; beyond it uploads get a 503 with
// Retry-After, small requests still get through, and the budget comes back when they end.
func TestBodyBudget(t *testing.T) {
	e := newEnv(t, server.Config{MaxInflightBodyBytes: 4 << 20}) // 3 MiB for large bodies
	fn := e.register(t, "noop", samples.Noop, nil)

	stalled, _ := rawUpload(t, e.url, 8<<20, 2<<20+512<<10) // holds 2.5 MiB
	time.Sleep(100 * time.Millisecond)                      // let the server read it
	_, answers := rawUpload(t, e.url, 1<<20, 1<<20)
	select {
	case resp := <-answers:
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
			!strings.Contains(string(body), `"unavailable"`) {
			t.Fatalf("an upload past the budget got %d (Retry-After %q): %s",
				resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to an upload past the budget")
	}
	e.execute(t, fn, []byte("small requests still get in"))

	stalled.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := e.do(t, http.MethodPost, "/register_function?name=junk", "application/wasm", make([]byte, 1<<20))
		if a.status == http.StatusBadRequest { // read whole: the budget came back
			break
		}
		if a.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the stalled upload left: %d %s", a.status, a.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A /wait answer carries outputs up to MaxWaitResultBytes; the others are marked omitted and
// come from /result. client.Wait fetches them itself.
func TestWaitOmitsLargeOutputs(t *testing.T) {
	e := newEnv(t, server.Config{MaxWaitResultBytes: 3000})
	fn := e.register(t, "noop", samples.Noop, nil)
	small := e.execute(t, fn, []byte("small"))
	big1 := e.execute(t, fn, bytes.Repeat([]byte("a"), 2000))
	big2 := e.execute(t, fn, bytes.Repeat([]byte("b"), 2000))
	e.finish(t, echoOutcome)

	a := e.postJSON(t, "/wait", jsonBody(map[string]any{"task_ids": []string{small, big1, big2}})).want(t, http.StatusOK)
	tasks, _ := a.obj["tasks"].([]any)
	if len(tasks) != 3 {
		t.Fatalf("/wait answered %s", a.raw)
	}
	var omitted []string
	for _, v := range tasks {
		tk := v.(map[string]any)
		if tk["result_omitted"] == true {
			if tk["result"] != nil || tk["status"] != "COMPLETED" {
				t.Fatalf("an omitted task: %v", tk)
			}
			omitted = append(omitted, tk["task_id"].(string))
		} else if tk["result"] == nil {
			t.Fatalf("a task with neither result nor result_omitted: %v", tk)
		}
	}
	if len(omitted) != 1 || omitted[0] != big2 {
		t.Fatalf("omitted %v, want only the one past 3000 bytes (%s)", omitted, big2)
	}

	got, err := e.c.Wait(ctxT(t), []string{small, big1, big2}, 0)
	if err != nil || len(got) != 3 {
		t.Fatalf("client.Wait = %d tasks, %v", len(got), err)
	}
	for _, tk := range got {
		if tk.ResultOmitted || len(tk.Result) < 5 || string(tk.Result[:4]) != "out:" {
			t.Fatalf("client.Wait left task %s without its result: %+v", tk.TaskID, tk)
		}
	}
}

// An output larger than the whole output budget is still answered when nothing else is (or
// it could never be read), and /status never carries outputs.
func TestResultBudget(t *testing.T) {
	e := newEnv(t, server.Config{MaxInflightResultBytes: 1000})
	fn := e.register(t, "noop", samples.Noop, nil)
	id := e.execute(t, fn, bytes.Repeat([]byte("c"), 5000))
	e.finish(t, echoOutcome)
	a := e.get(t, "/result/"+id).want(t, http.StatusOK)
	if len(a.str("result")) < 5000 {
		t.Fatalf("result of a lone large output: %s", a.raw[:200])
	}
	if a := e.get(t, "/status/"+id).want(t, http.StatusOK); a.obj["result"] != nil {
		t.Fatalf("/status carries a result: %s", a.raw[:200])
	}
}

// While the output budget is spent, /result of a large output is a 503 with Retry-After and
// /wait leaves every output out; client.Wait waits as Retry-After says and gets them once
// the budget is back.
func TestResultBudgetSpent(t *testing.T) {
	e := newEnv(t, server.Config{MaxInflightResultBytes: 100_000})
	fn := e.register(t, "noop", samples.Noop, nil)
	id := e.execute(t, fn, bytes.Repeat([]byte("d"), 30_000))
	e.finish(t, echoOutcome)
	release := server.HoldOutputs(e.srv, 90_000)

	a := e.get(t, "/result/"+id)
	a.wantError(t, http.StatusServiceUnavailable, "unavailable", "result bytes")
	if a.header.Get("Retry-After") != "1" {
		t.Fatalf("a 503 without Retry-After: %v", a.header)
	}
	w := e.postJSON(t, "/wait", jsonBody(map[string]any{"task_ids": []string{id}})).want(t, http.StatusOK)
	if !bytes.Contains(w.raw, []byte(`"result_omitted":true`)) {
		t.Fatalf("/wait with the budget spent: %s", w.raw)
	}

	go func() { time.Sleep(300 * time.Millisecond); release() }()
	got, err := e.c.Wait(ctxT(t), []string{id}, 0)
	if err != nil || len(got) != 1 || len(got[0].Result) != 30_004 {
		t.Fatalf("client.Wait once the budget is back = %+v, %v", got, err)
	}
}
