package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"faas/client"
	"faas/internal/testutil"
	"faas/samples"
	"faas/server"
	"faas/task"
)

func TestRegister(t *testing.T) {
	e := newEnv(t, server.Config{MaxModuleBytes: 1 << 20})
	random := make([]byte, 1000)
	rand.Read(random)
	big := make([]byte, 1<<20+1)
	copy(big, samples.Noop)

	t.Run("json", func(t *testing.T) {
		e.register(t, "noop", samples.Noop, nil)
	})
	t.Run("json with limits", func(t *testing.T) {
		id := e.register(t, "double", samples.DoubleWAT, map[string]any{"timeout_ms": 500, "stdin_bytes": 100})
		f, err := e.c.Function(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if f.Limits.TimeoutMs != 500 || f.Limits.StdinBytes != 100 || f.Limits.MemoryMB != 64 {
			t.Fatalf("limits %+v, want 500 ms, 100 B stdin and the default memory", f.Limits)
		}
	})
	t.Run("raw", func(t *testing.T) {
		a := e.do(t, http.MethodPost, "/register_function?name=raw.noop_1&memory_mb=16", "application/wasm", samples.Noop).
			want(t, http.StatusCreated)
		if len(a.obj) != 1 || len(a.str("function_id")) != 36 {
			t.Fatalf("want exactly {\"function_id\": uuid}, got %s", a.raw)
		}
		f, err := e.c.Function(ctxT(t), a.str("function_id"))
		if err != nil {
			t.Fatal(err)
		}
		if f.Name != "raw.noop_1" || f.Limits.MemoryMB != 16 || f.ModuleSize != int64(len(samples.Noop)) {
			t.Fatalf("got %+v", f)
		}
	})
	t.Run("abi", func(t *testing.T) {
		cmd := e.register(t, "cmd", samples.Noop, nil)
		rx := e.register(t, "reactor", samples.ReactorCounter, nil)
		for id, want := range map[string]string{cmd: "command", rx: "reactor"} {
			f, err := e.c.Function(ctxT(t), id)
			if err != nil || f.ABI != want {
				t.Fatalf("Function(%s) = %+v, %v; want abi %s", id, f, err, want)
			}
			if a := e.get(t, "/functions/"+id).want(t, http.StatusOK); a.str("abi") != want {
				t.Fatalf("GET /functions/%s: %s; want abi %s", id, a.raw, want)
			}
		}
		if a := e.get(t, "/functions").want(t, http.StatusOK); !strings.Contains(string(a.raw), `"abi":"reactor"`) {
			t.Fatalf("GET /functions does not show the abi: %s", a.raw)
		}
		e.do(t, http.MethodPost, "/register_function?name=both", "application/wasm", samples.Hostile["reactor_both"]).
			wantError(t, 400, "invalid_module", "exports both _start and run")
	})
	t.Run("raw with parameters in content type", func(t *testing.T) {
		e.do(t, http.MethodPost, "/register_function?name=x", "Application/Wasm; charset=binary", samples.Noop).
			want(t, http.StatusCreated)
	})

	for _, c := range []struct {
		name   string
		body   string
		status int
		code   string
		msg    []string
	}{
		{"empty body", ``, 400, "bad_request", []string{"empty"}},
		{"bad json", `{"name": "x", "payload": `, 400, "bad_request", []string{"JSON"}},
		{"syntax error", `{"name" "x"}`, 400, "bad_request", []string{"JSON"}},
		{"not an object", `[1,2]`, 400, "bad_request", nil},
		{"trailing data", `{"name":"x","payload":""} {}`, 400, "bad_request", []string{"after"}},
		{"unknown field", `{"name":"x","payload":"","color":"red"}`, 400, "bad_request", []string{"color"}},
		{"unknown limit", `{"name":"x","payload":"","limits":{"cpus":2}}`, 400, "bad_request", []string{"cpus"}},
		{"wrong type", `{"name":7,"payload":""}`, 400, "bad_request", []string{"name", "string"}},
		{"fractional limit", `{"name":"x","payload":"AA==","limits":{"timeout_ms":1.5}}`, 400, "bad_request", []string{"timeout_ms"}},
		{"bad base64", `{"name":"x","payload":"not base64!"}`, 400, "bad_request", []string{"payload", "base64"}},
		{"unpadded base64", `{"name":"x","payload":"AGFzbQ"}`, 400, "bad_request", []string{"base64"}},
		{"payload a number", `{"name":"x","payload":12}`, 400, "bad_request", []string{"payload"}},
		{"missing payload", `{"name":"x"}`, 400, "bad_request", []string{"payload", "required"}},
		{"null payload", `{"name":"x","payload":null}`, 400, "bad_request", []string{"payload", "required"}},
		{"empty module", `{"name":"x","payload":""}`, 400, "invalid_module", nil},
		{"random bytes", jsonBody(map[string]any{"name": "x", "payload": b64(random)}), 400, "invalid_module", nil},
		{"text", jsonBody(map[string]any{"name": "x", "payload": b64([]byte("hello world"))}), 400, "invalid_module", nil},
		{"non-WASI import", jsonBody(map[string]any{"name": "x", "payload": b64(samples.Hostile["bad_import"])}), 400, "invalid_module", nil},
		{"missing name", jsonBody(map[string]any{"payload": b64(samples.Noop)}), 400, "bad_request", []string{"name"}},
		{"empty name", jsonBody(map[string]any{"name": "", "payload": b64(samples.Noop)}), 400, "bad_request", []string{"name"}},
		{"name with space", jsonBody(map[string]any{"name": "a b", "payload": b64(samples.Noop)}), 400, "bad_request", []string{"name"}},
		{"name with slash", jsonBody(map[string]any{"name": "a/b", "payload": b64(samples.Noop)}), 400, "bad_request", []string{"name"}},
		{"name not ascii", jsonBody(map[string]any{"name": "café", "payload": b64(samples.Noop)}), 400, "bad_request", []string{"name"}},
		{"name too long", jsonBody(map[string]any{"name": strings.Repeat("a", 129), "payload": b64(samples.Noop)}), 400, "bad_request", []string{"128"}},
		{"timeout above max", jsonBody(map[string]any{"name": "x", "payload": b64(samples.Noop), "limits": map[string]any{"timeout_ms": 300_001}}),
			400, "bad_request", []string{"timeout_ms", "300000"}},
		{"memory above max", jsonBody(map[string]any{"name": "x", "payload": b64(samples.Noop), "limits": map[string]any{"memory_mb": 1025}}),
			400, "bad_request", []string{"memory_mb"}},
		{"stdout above max", jsonBody(map[string]any{"name": "x", "payload": b64(samples.Noop), "limits": map[string]any{"stdout_bytes": 64<<20 + 1}}),
			400, "bad_request", []string{"stdout_bytes"}},
		{"stdin above max", jsonBody(map[string]any{"name": "x", "payload": b64(samples.Noop), "limits": map[string]any{"stdin_bytes": 1 << 40}}),
			400, "bad_request", []string{"stdin_bytes"}},
		{"negative limit", jsonBody(map[string]any{"name": "x", "payload": b64(samples.Noop), "limits": map[string]any{"memory_mb": -1}}),
			400, "bad_request", []string{"memory_mb", "negative"}},
		{"module too large", jsonBody(map[string]any{"name": "x", "payload": b64(big)}), 413, "too_large", []string{"1048576"}},
		{"body too large", `{"name":"x","payload":"` + strings.Repeat("A", 2<<20) + `"}`, 413, "too_large", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.postJSON(t, "/register_function", c.body).wantError(t, c.status, c.code, c.msg...)
		})
	}

	for _, c := range []struct {
		name   string
		query  string
		body   []byte
		status int
		code   string
		msg    []string
	}{
		{"raw random bytes", "name=x", random, 400, "invalid_module", nil},
		{"raw non-WASI import", "name=x", samples.Hostile["bad_import"], 400, "invalid_module", nil},
		{"raw missing name", "", samples.Noop, 400, "bad_request", []string{"name"}},
		{"raw bad name", "name=" + url.QueryEscape("a b"), samples.Noop, 400, "bad_request", []string{"name"}},
		{"raw bad limit", "name=x&timeout_ms=soon", samples.Noop, 400, "bad_request", []string{"timeout_ms"}},
		{"raw limit above max", "name=x&memory_mb=4096", samples.Noop, 400, "bad_request", []string{"memory_mb", "1024"}},
		{"raw too large", "name=x", big, 413, "too_large", []string{"1048576"}},
		{"raw module without its content type", "name=x", samples.Noop, 400, "bad_request", []string{"application/wasm"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct := "application/wasm"
			if strings.Contains(c.name, "without its content type") {
				ct = ""
			}
			e.do(t, http.MethodPost, "/register_function?"+c.query, ct, c.body).
				wantError(t, c.status, c.code, c.msg...)
		})
	}
}

func TestRegisterSameNameNewestWins(t *testing.T) {
	e := newEnv(t, server.Config{})
	first := e.register(t, "same", samples.Noop, nil)
	second := e.register(t, "same", samples.DoubleWAT, nil)
	if first == second {
		t.Fatal("registering a name again must make a new function")
	}
	a := e.get(t, "/functions/same").want(t, http.StatusOK)
	if a.str("function_id") != second {
		t.Fatalf("name resolves to %s, want the newest %s", a.str("function_id"), second)
	}
	a = e.get(t, "/functions/"+first).want(t, http.StatusOK)
	if a.str("function_id") != first || a.str("name") != "same" || a.str("module_sha256") == "" {
		t.Fatalf("by id: %s", a.raw)
	}
	l := e.get(t, "/functions").want(t, http.StatusOK)
	fns, _ := l.obj["functions"].([]any)
	if len(fns) != 2 {
		t.Fatalf("want 2 functions, got %s", l.raw)
	}
	e.get(t, "/functions/nope").wantError(t, 404, "not_found", "nope")
	e.get(t, "/functions/"+uuid.NewString()).wantError(t, 404, "not_found")
}

func TestExecute(t *testing.T) {
	e := newEnv(t, server.Config{})
	fn := e.register(t, "noop", samples.Noop, map[string]any{"stdin_bytes": 10})

	t.Run("ok", func(t *testing.T) {
		id := e.execute(t, fn, []byte("hi"))
		a := e.get(t, "/status/"+id).want(t, http.StatusOK)
		if a.str("task_id") != id || a.str("status") != "QUEUED" {
			t.Fatalf("got %s", a.raw)
		}
	})
	t.Run("empty payload", func(t *testing.T) {
		e.postJSON(t, "/execute_function", `{"function_id":"`+fn+`","payload":""}`).want(t, http.StatusCreated)
	})
	t.Run("escaped slash in base64", func(t *testing.T) {
		// "/w==" is 0xff; JSON may escape the slash.
		e.postJSON(t, "/execute_function", `{"function_id":"`+fn+`","payload":"\/w=="}`).want(t, http.StatusCreated)
	})
	t.Run("input at the limit", func(t *testing.T) {
		e.execute(t, fn, bytes.Repeat([]byte("x"), 10))
	})
	t.Run("by name, the newest of that name", func(t *testing.T) {
		newer := e.register(t, "noop", samples.Noop, nil)
		a := e.postJSON(t, "/execute_function", `{"function_name":"noop","payload":""}`).want(t, http.StatusCreated)
		if got := e.get(t, "/result/"+a.str("task_id")).want(t, http.StatusOK).str("function_id"); got != newer {
			t.Fatalf("task of function %s, want the newest noop %s (older %s)", got, newer, fn)
		}
	})
	for _, c := range []struct {
		name   string
		body   string
		status int
		code   string
		msg    []string
	}{
		{"empty body", ``, 400, "bad_request", nil},
		{"bad json", `{"function_id":`, 400, "bad_request", nil},
		{"unknown field", `{"function_id":"` + fn + `","payload":"","input":"x"}`, 400, "bad_request", []string{"input"}},
		{"missing payload", `{"function_id":"` + fn + `"}`, 400, "bad_request", []string{"payload"}},
		{"null payload", `{"function_id":"` + fn + `","payload":null}`, 400, "bad_request", []string{"payload"}},
		{"bad base64", `{"function_id":"` + fn + `","payload":"***"}`, 400, "bad_request", []string{"base64"}},
		{"missing function_id", `{"payload":""}`, 400, "bad_request", []string{"function_id"}},
		{"function_id a number", `{"function_id":5,"payload":""}`, 400, "bad_request", []string{"function_id"}},
		{"unknown function", `{"function_id":"` + uuid.NewString() + `","payload":""}`, 404, "not_found", nil},
		{"malformed function id", `{"function_id":"nope","payload":""}`, 404, "not_found", []string{"nope"}},
		{"id and name", `{"function_id":"` + fn + `","function_name":"noop","payload":""}`, 400, "bad_request", []string{"not both"}},
		{"unknown name", `{"function_name":"nobody","payload":""}`, 404, "not_found", []string{"nobody"}},
		{"bad name", `{"function_name":"no/pe","payload":""}`, 400, "bad_request", []string{"function_name"}},
		{"an id as a name", `{"function_name":"` + fn + `","payload":""}`, 404, "not_found", nil},
		{"input over the limit", `{"function_id":"` + fn + `","payload":"` + b64(make([]byte, 11)) + `"}`, 413, "too_large", []string{"stdin_bytes", "10"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.postJSON(t, "/execute_function", c.body).wantError(t, c.status, c.code, c.msg...)
		})
	}
}

func TestExecuteBodyOverServerMax(t *testing.T) {
	e := newEnv(t, server.Config{MaxLimits: sandboxLimits(1000)})
	fn := e.register(t, "noop", samples.Noop, map[string]any{"stdin_bytes": 1000})
	e.postJSON(t, "/execute_function", `{"function_id":"`+fn+`","payload":"`+b64(make([]byte, 1<<20))+`"}`).
		wantError(t, 413, "too_large", "stdin_bytes")
}

func TestStatusAndResult(t *testing.T) {
	e := newEnv(t, server.Config{})
	fn := e.register(t, "noop", samples.Noop, nil)
	ok := e.execute(t, fn, []byte("in"))

	a := e.get(t, "/result/"+ok).want(t, http.StatusOK)
	if a.str("status") != "QUEUED" || a.obj["result"] != nil {
		t.Fatalf("before it runs: %s", a.raw)
	}
	if _, present := a.obj["result"]; !present {
		t.Fatalf("result must be present (null) before the task ends: %s", a.raw)
	}
	start := time.Now()
	a = e.get(t, "/result/"+ok+"?wait=100ms").want(t, http.StatusOK)
	if a.str("status") != "QUEUED" || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("a wait that runs out answers the current state after the wait: %s after %v", a.raw, time.Since(start))
	}
	e.finish(t, echoOutcome)
	a = e.get(t, "/result/"+ok).want(t, http.StatusOK)
	if a.str("status") != "COMPLETED" || a.str("result") != b64([]byte("out:in")) {
		t.Fatalf("completed: %s", a.raw)
	}
	if a.obj["attempts"] != float64(1) || a.obj["duration_ms"] != float64(3) || a.str("finished_at") == "" {
		t.Fatalf("extras: %s", a.raw)
	}
	if _, has := a.obj["error"]; has {
		t.Fatalf("a COMPLETED task has no error: %s", a.raw)
	}
	s := e.get(t, "/status/"+ok).want(t, http.StatusOK)
	if s.str("status") != "COMPLETED" || s.str("task_id") != ok {
		t.Fatalf("status: %s", s.raw)
	}

	bad := e.execute(t, fn, nil)
	e.finish(t, failOutcome)
	a = e.get(t, "/result/"+bad+"?wait=1s").want(t, http.StatusOK)
	errObj, _ := a.obj["error"].(map[string]any)
	if a.str("status") != "FAILED" || errObj["kind"] != "exit" || errObj["message"] != "exit code 2" {
		t.Fatalf("failed: %s", a.raw)
	}
	if got, _ := base64.StdEncoding.DecodeString(a.str("result")); string(got) != "exit: exit code 2" {
		t.Fatalf("a FAILED task's result is \"<kind>: <message>\", got %q", got)
	}
	if got, _ := base64.StdEncoding.DecodeString(a.str("stderr")); string(got) != "bad input\n" {
		t.Fatalf("stderr %q", got)
	}

	for _, c := range []struct {
		name, path string
		status     int
		code       string
	}{
		{"status unknown", "/status/" + uuid.NewString(), 404, "not_found"},
		{"status malformed", "/status/not-a-uuid", 404, "not_found"},
		{"status uuid without dashes", "/status/" + strings.ReplaceAll(ok, "-", ""), 404, "not_found"},
		{"result unknown", "/result/" + uuid.NewString(), 404, "not_found"},
		{"result unknown with wait", "/result/" + uuid.NewString() + "?wait=5s", 404, "not_found"},
		{"result malformed", "/result/xyz", 404, "not_found"},
		{"bad wait", "/result/" + ok + "?wait=soon", 400, "bad_request"},
		{"wait without unit", "/result/" + ok + "?wait=5", 400, "bad_request"},
		{"negative wait", "/result/" + ok + "?wait=-1s", 400, "bad_request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			e.get(t, c.path).wantError(t, c.status, c.code)
			if time.Since(start) > time.Second {
				t.Fatalf("an error answer must not wait (%v)", time.Since(start))
			}
		})
	}
}

// TestResultWaitWokenAtOnce checks that a long poll answers as soon as its task ends,
// long before its wait runs out, and that the wait is capped by MaxWait.
func TestResultWaitWokenAtOnce(t *testing.T) {
	e := newEnv(t, server.Config{MaxWait: 20 * time.Second})
	fn := e.register(t, "noop", samples.Noop, nil)
	id := e.execute(t, fn, []byte("x"))

	type res struct {
		a   answer
		dur time.Duration
	}
	got := make(chan res, 1)
	start := time.Now()
	go func() {
		a := e.get(t, "/result/"+id+"?wait=1h") // capped at 20s
		got <- res{a, time.Since(start)}
	}()
	testutil.WaitFor(t, 5*time.Second, "the request to watch its task", func() bool { return e.done.Watching() > 0 })
	finished := time.Now()
	e.finish(t, echoOutcome)
	select {
	case r := <-got:
		r.a.want(t, http.StatusOK)
		if r.a.str("status") != "COMPLETED" {
			t.Fatalf("got %s", r.a.raw)
		}
		if lag := time.Since(finished); lag > time.Second {
			t.Fatalf("answered %v after the task ended", lag)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the long poll was not woken when its task ended")
	}
	testutil.WaitFor(t, 5*time.Second, "the watch to be dropped", func() bool { return e.done.Watching() == 0 })
}

func TestBatch(t *testing.T) {
	e := newEnv(t, server.Config{MaxBatch: 50, MaxBatchBytes: 1000})
	fn := e.register(t, "noop", samples.Noop, map[string]any{"stdin_bytes": 100})

	payloads := make([]string, 50)
	for i := range payloads {
		payloads[i] = b64([]byte{byte('a' + i%26), byte(i)})
	}
	payloads[7] = "" // empty input is fine
	a := e.postJSON(t, "/execute_batch", jsonBody(map[string]any{"function_id": fn, "payloads": payloads})).
		want(t, http.StatusCreated)
	ids, _ := a.obj["task_ids"].([]any)
	if len(ids) != 50 {
		t.Fatalf("want 50 task ids, got %s", a.raw)
	}
	claimed := e.finish(t, echoOutcome)
	if len(claimed) != 50 {
		t.Fatalf("claimed %d tasks, want 50", len(claimed))
	}
	for i, c := range claimed {
		if c.ID != ids[i] {
			t.Fatalf("task %d: queue order %s, answer order %v", i, c.ID, ids[i])
		}
		want, _ := base64.StdEncoding.DecodeString(payloads[i])
		if !bytes.Equal(c.Input, want) {
			t.Fatalf("task %d: input %q, want %q", i, c.Input, want)
		}
	}

	many := make([]string, 51)
	for i := range many {
		many[i] = ""
	}
	for _, c := range []struct {
		name   string
		body   string
		status int
		code   string
		msg    []string
	}{
		{"too many inputs", jsonBody(map[string]any{"function_id": fn, "payloads": many}), 413, "too_large", []string{"51", "50"}},
		{"too many bytes", jsonBody(map[string]any{"function_id": fn, "payloads": []string{b64(make([]byte, 100)),
			b64(make([]byte, 100)), b64(make([]byte, 100)), b64(make([]byte, 100)), b64(make([]byte, 100)),
			b64(make([]byte, 100)), b64(make([]byte, 100)), b64(make([]byte, 100)), b64(make([]byte, 100)),
			b64(make([]byte, 100)), b64(make([]byte, 100))}}), 413, "too_large", []string{"1000"}},
		{"body too large", jsonBody(map[string]any{"function_id": fn, "payloads": []string{strings.Repeat("A", 4000)}}), 413, "too_large", nil},
		{"input over the function's limit", jsonBody(map[string]any{"function_id": fn, "payloads": []string{"", b64(make([]byte, 101))}}),
			413, "too_large", []string{"payloads[1]", "stdin_bytes"}},
		{"null input", `{"function_id":"` + fn + `","payloads":["",null]}`, 400, "bad_request", []string{"payloads[1]"}},
		{"bad base64", `{"function_id":"` + fn + `","payloads":["","","%%"]}`, 400, "bad_request", []string{"payloads[2]", "base64"}},
		{"no inputs", `{"function_id":"` + fn + `","payloads":[]}`, 400, "bad_request", []string{"payloads"}},
		{"missing payloads", `{"function_id":"` + fn + `"}`, 400, "bad_request", []string{"payloads"}},
		{"unknown field", `{"function_id":"` + fn + `","payloads":[""],"x":1}`, 400, "bad_request", []string{"x"}},
		{"unknown function", `{"function_id":"` + uuid.NewString() + `","payloads":[""]}`, 404, "not_found", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.postJSON(t, "/execute_batch", c.body).wantError(t, c.status, c.code, c.msg...)
		})
	}
}

func TestWait(t *testing.T) {
	e := newEnv(t, server.Config{MaxBatch: 100})
	fn := e.register(t, "noop", samples.Noop, nil)
	ids, err := e.c.ExecuteBatch(ctxT(t), fn, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("none terminal, no wait", func(t *testing.T) {
		a := e.postJSON(t, "/wait", jsonBody(map[string]any{"task_ids": ids})).want(t, http.StatusOK)
		if ts, _ := a.obj["tasks"].([]any); len(ts) != 0 {
			t.Fatalf("got %s", a.raw)
		}
	})
	t.Run("none terminal, wait runs out", func(t *testing.T) {
		start := time.Now()
		a := e.postJSON(t, "/wait", jsonBody(map[string]any{"task_ids": ids, "wait": "100ms"})).want(t, http.StatusOK)
		if ts, _ := a.obj["tasks"].([]any); len(ts) != 0 || time.Since(start) < 100*time.Millisecond {
			t.Fatalf("got %s after %v", a.raw, time.Since(start))
		}
	})
	t.Run("woken by the first to end", func(t *testing.T) {
		got := make(chan answer, 1)
		go func() { got <- e.postJSON(t, "/wait", jsonBody(map[string]any{"task_ids": ids, "wait": "20s"})) }()
		testutil.WaitFor(t, 5*time.Second, "the watch", func() bool { return e.done.Watching() == 3 })
		ctx := ctxT(t)
		ts, err := e.st.Claim(ctx, "test", 1)
		if err != nil || len(ts) != 1 {
			t.Fatalf("Claim: %v %v", ts, err)
		}
		o := echoOutcome(ts[0])
		o.Ref = ts[0].Ref()
		if _, err := e.st.Complete(ctx, []task.Outcome{o}); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-got:
			a.want(t, http.StatusOK)
			tasks, _ := a.obj["tasks"].([]any)
			if len(tasks) != 1 {
				t.Fatalf("want the one task that ended, got %s", a.raw)
			}
			if tk := tasks[0].(map[string]any); tk["task_id"] != ids[0] || tk["status"] != "COMPLETED" ||
				tk["result"] != b64([]byte("out:a")) {
				t.Fatalf("got %s", a.raw)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("/wait was not woken")
		}
	})
	t.Run("all terminal now", func(t *testing.T) {
		e.finish(t, echoOutcome)
		tasks, err := e.c.Wait(ctxT(t), append(ids, ids[0]), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) != 3 {
			t.Fatalf("want the 3 tasks (duplicates dropped), got %d", len(tasks))
		}
		for i, tk := range tasks {
			if tk.TaskID != ids[i] || !tk.Terminal() || len(tk.Raw) == 0 {
				t.Fatalf("task %d: %+v", i, tk)
			}
		}
	})
	for _, c := range []struct {
		name   string
		body   string
		status int
		code   string
		msg    []string
	}{
		{"unknown id", jsonBody(map[string]any{"task_ids": []string{ids[0], uuid.NewString()}, "wait": "5s"}), 404, "not_found", nil},
		{"malformed id", jsonBody(map[string]any{"task_ids": []string{"abc"}}), 404, "not_found", []string{"abc"}},
		{"bad wait", jsonBody(map[string]any{"task_ids": ids, "wait": "later"}), 400, "bad_request", []string{"later"}},
		{"no ids", `{"task_ids":[]}`, 400, "bad_request", []string{"task_ids"}},
		{"too many ids", jsonBody(map[string]any{"task_ids": make([]string, 101)}), 413, "too_large", nil},
		{"unknown field", `{"task_ids":["` + ids[0] + `"],"timeout":"1s"}`, 400, "bad_request", []string{"timeout"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.postJSON(t, "/wait", c.body).wantError(t, c.status, c.code, c.msg...)
		})
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, server.Config{})
	e.get(t, "/nope").wantError(t, 404, "not_found", "/nope")
	e.do(t, http.MethodGet, "/register_function", "", nil).wantError(t, 405, "bad_request", "GET")
	e.do(t, http.MethodDelete, "/status/"+uuid.NewString(), "", nil).wantError(t, 405, "bad_request")
	a := e.get(t, "/healthz").want(t, http.StatusOK)
	if a.str("status") != "degraded" { // no dispatcher in this test (live_test.go has one)
		t.Fatalf("healthz: %s", a.raw)
	}
	l := e.get(t, "/functions").want(t, http.StatusOK)
	if fns, ok := l.obj["functions"].([]any); !ok || len(fns) != 0 {
		t.Fatalf("an empty list is [], got %s", l.raw)
	}
}

// TestRedisDown checks that every endpoint answers 503 (quickly, not hanging) while Redis
// is paused or stopped, and recovers when it is back.
func TestRedisDown(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits for Redis timeouts")
	}
	e := newEnv(t, server.Config{})
	fn := e.register(t, "noop", samples.Noop, nil)
	id := e.execute(t, fn, nil)

	var checkAll func(t *testing.T)
	check := func(t *testing.T) {
		t.Helper()
		t.Run("all", func(t *testing.T) { checkAll(t) }) // returns once the parallel ones end
	}
	checkAll = func(t *testing.T) {
		for _, c := range []struct {
			name        string
			method, url string
			body        string
		}{
			{"healthz", http.MethodGet, "/healthz", ""},
			{"execute", http.MethodPost, "/execute_function", `{"function_id":"` + fn + `","payload":""}`},
			{"batch", http.MethodPost, "/execute_batch", `{"function_id":"` + fn + `","payloads":[""]}`},
			{"status", http.MethodGet, "/status/" + id, ""},
			{"result", http.MethodGet, "/result/" + id + "?wait=1s", ""},
			{"wait", http.MethodPost, "/wait", `{"task_ids":["` + id + `"]}`},
			{"functions", http.MethodGet, "/functions", ""},
			{"register", http.MethodPost, "/register_function", jsonBody(map[string]any{"name": "n", "payload": b64(samples.DoubleWAT)})},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				e.do(t, c.method, c.url, "application/json", []byte(c.body)).wantError(t, 503, "unavailable", "Redis")
				if d := time.Since(start); d > 10*time.Second {
					t.Fatalf("took %v to answer 503", d)
				}
			})
		}
	}
	t.Run("paused", func(t *testing.T) {
		e.redis.Pause()
		defer e.redis.Resume()
		check(t)
	})
	testutil.WaitFor(t, 10*time.Second, "health after resume", func() bool { return e.c.Health(ctxT(t)) == nil })
	t.Run("stopped", func(t *testing.T) {
		e.redis.Stop()
		check(t)
	})
	e.redis.Restart(t)
	testutil.WaitFor(t, 10*time.Second, "health after restart", func() bool { return e.c.Health(ctxT(t)) == nil })
}

// TestServeShutdown checks that Serve stops within its 10 s budget when its context ends,
// answering a long poll in flight with the task's current state.
func TestServeShutdown(t *testing.T) {
	e := newEnv(t, server.Config{})
	fn := e.register(t, "noop", samples.Noop, nil)
	id := e.execute(t, fn, nil)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ctx, ln) }()
	c := client.New("http://" + ln.Addr().String())
	if err := c.Health(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	polled := make(chan client.Task, 1)
	go func() {
		tk, err := c.Result(context.Background(), id, 30*time.Second)
		if err != nil {
			t.Error(err)
		}
		polled <- tk
	}()
	testutil.WaitFor(t, 5*time.Second, "the long poll", func() bool { return e.done.Watching() > 0 })
	stopped := time.Now()
	cancel()
	select {
	case tk := <-polled:
		if tk.Status != "QUEUED" {
			t.Fatalf("the long poll answered %+v", tk)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll was not answered at shutdown")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(11 * time.Second):
		t.Fatal("Serve did not return")
	}
	if d := time.Since(stopped); d > 2*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if err := c.Health(ctxT(t)); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("after Serve returned: %v, want unreachable", err)
	}
}
