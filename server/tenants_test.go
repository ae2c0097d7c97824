package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/client"
	"faas/samples"
	"faas/server"
	"faas/task"
)

const (
	keyA = "key-of-namespace-a-0123456789"
	keyB = "key-of-namespace-b-0123456789"
	keyC = "key-of-namespace-c-0123456789"
)

// newTenantEnv is a server with three namespaces: A and B without quotas, and C with the
// quotas of cQuota (a key file line's options).
func newTenantEnv(t *testing.T, cQuota string) *env {
	t.Helper()
	ring, err := server.ParseKeys(strings.NewReader(
		"# namespaces of the tests\nA "+keyA+"\nB "+keyB+" # no quota\nC "+keyC+" "+cQuota+"\n"), server.Quota{})
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	return newEnv(t, server.Config{Keys: ring})
}

// as sends a request with key (none if "").
func (e *env) as(tb testing.TB, key, method, path, contentType string, body []byte, hdr ...string) answer {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctxT(tb), method, e.url+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: raw, header: resp.Header}
	_ = jsonUnmarshal(raw, &a.obj)
	return a
}

func (e *env) registerAs(tb testing.TB, key, name string, wasm []byte) string {
	tb.Helper()
	a := e.as(tb, key, http.MethodPost, "/register_function?name="+name, "application/wasm", wasm).want(tb, http.StatusCreated)
	return a.str("function_id")
}

func (e *env) executeAs(tb testing.TB, key, fnID, input string) answer {
	tb.Helper()
	return e.as(tb, key, http.MethodPost, "/execute_function", "application/json",
		[]byte(jsonBody(map[string]any{"function_id": fnID, "payload": b64([]byte(input))})))
}

func TestUnauthorizedEverywhereButHealthz(t *testing.T) {
	e := newTenantEnv(t, "")
	fn := e.registerAs(t, keyA, "double", samples.DoubleWAT)
	tid := e.executeAs(t, keyA, fn, "21").want(t, http.StatusCreated).str("task_id")
	routes := []struct{ method, path, body string }{
		{"POST", "/register_function", `{"name":"x","payload":""}`},
		{"POST", "/execute_function", `{"function_id":"` + fn + `","payload":"MjE="}`},
		{"POST", "/execute_batch", `{"function_id":"` + fn + `","payloads":["MjE="]}`},
		{"GET", "/status/" + tid, ""},
		{"GET", "/result/" + tid, ""},
		{"POST", "/wait", `{"task_ids":["` + tid + `"]}`},
		{"GET", "/functions", ""},
		{"GET", "/functions/" + fn, ""},
		{"DELETE", "/functions/" + fn, ""},
		{"GET", "/metrics", ""},
		{"GET", "/no/such/route", ""},
	}
	for _, key := range []string{"", "wrong-key-of-the-right-length", keyA + "x"} {
		for _, r := range routes {
			a := e.as(t, key, r.method, r.path, "application/json", []byte(r.body))
			a.wantError(t, http.StatusUnauthorized, "unauthorized", "Authorization: Bearer")
			if a.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", r.method, r.path)
			}
		}
	}
	if a := e.as(t, "", "GET", "/healthz", "", nil); a.status != http.StatusOK {
		t.Fatalf("/healthz without a key: %d %s", a.status, a.raw)
	}
	// Nothing was deleted by the refused DELETEs.
	e.as(t, keyA, "GET", "/functions/"+fn, "", nil).want(t, http.StatusOK)
	// The key is never in an answer.
	a := e.as(t, keyA+"x", "GET", "/functions", "", nil)
	if bytes.Contains(a.raw, []byte(keyA)) {
		t.Fatalf("the answer echoes the key: %s", a.raw)
	}
}

func TestNamespacesIsolate(t *testing.T) {
	e := newTenantEnv(t, "")
	fnA := e.registerAs(t, keyA, "double", samples.DoubleWAT)
	tidA := e.executeAs(t, keyA, fnA, "21").want(t, http.StatusCreated).str("task_id")

	// B sees none of A's: function by id and by name, tasks, results, /wait, the list.
	e.as(t, keyB, "GET", "/functions/"+fnA, "", nil).wantError(t, 404, "not_found")
	e.as(t, keyB, "GET", "/functions/double", "", nil).wantError(t, 404, "not_found")
	e.executeAs(t, keyB, fnA, "21").wantError(t, 404, "not_found")
	e.as(t, keyB, "POST", "/execute_batch", "application/json",
		[]byte(`{"function_id":"`+fnA+`","payloads":["MjE="]}`)).wantError(t, 404, "not_found")
	for _, p := range []string{"/status/", "/result/"} {
		b := e.as(t, keyB, "GET", p+tidA, "", nil)
		b.wantError(t, 404, "not_found")
		unknown := e.as(t, keyB, "GET", p+"00000000-0000-4000-8000-000000000000", "", nil)
		if strings.ReplaceAll(string(b.raw), tidA, "ID") != strings.ReplaceAll(string(unknown.raw), "00000000-0000-4000-8000-000000000000", "ID") {
			t.Fatalf("another namespace's task answers %s, an unknown one %s", b.raw, unknown.raw)
		}
	}
	e.as(t, keyB, "POST", "/wait", "application/json", []byte(`{"task_ids":["`+tidA+`"]}`)).wantError(t, 404, "not_found")
	e.as(t, keyB, "DELETE", "/functions/"+fnA, "", nil).wantError(t, 404, "not_found")
	if a := e.as(t, keyB, "GET", "/functions", "", nil).want(t, 200); strings.Contains(string(a.raw), fnA) {
		t.Fatalf("B's /functions lists A's: %s", a.raw)
	}

	// B registering "double" (another module) changes nothing for A's "double".
	fnB := e.registerAs(t, keyB, "double", samples.Echo)
	if got := e.as(t, keyA, "GET", "/functions/double", "", nil).want(t, 200).str("function_id"); got != fnA {
		t.Fatalf("A's double is %s after B registered one, want %s", got, fnA)
	}
	if got := e.as(t, keyB, "GET", "/functions/double", "", nil).want(t, 200).str("function_id"); got != fnB {
		t.Fatalf("B's double is %s, want %s", got, fnB)
	}
	tidB := e.executeAs(t, keyB, fnB, "21").want(t, http.StatusCreated).str("task_id")
	// The dispatcher runs both (as a real one would, by module): A's gives 42, B's echoes.
	ran := e.finish(t, func(tk task.Task) task.Outcome {
		out := tk.Input
		if tk.FunctionID == fnA {
			n, _ := strconv.Atoi(string(tk.Input))
			out = []byte(strconv.Itoa(2 * n))
		}
		return task.Outcome{Stdout: out, Worker: "test"}
	})
	if len(ran) != 2 {
		t.Fatalf("claimed %d tasks, want 2", len(ran))
	}
	if r := e.as(t, keyA, "GET", "/result/"+tidA, "", nil).want(t, 200).str("result"); r != b64([]byte("42")) {
		t.Fatalf("A's result %q", r)
	}
	e.as(t, keyA, "GET", "/result/"+tidB, "", nil).wantError(t, 404, "not_found")
	// A's list has A's function only.
	a := e.as(t, keyA, "GET", "/functions", "", nil).want(t, 200)
	if !strings.Contains(string(a.raw), fnA) || strings.Contains(string(a.raw), fnB) {
		t.Fatalf("A's /functions: %s", a.raw)
	}
}

func TestBrowserSafety(t *testing.T) {
	e := newEnv(t, server.Config{})
	body := []byte(`{"name":"x","payload":"` + b64(samples.Noop) + `"}`)
	for _, c := range []struct{ ct, origin string }{
		{"text/plain", "https://evil.example"},
		{"text/plain", ""},
		{"application/x-www-form-urlencoded", "https://evil.example"},
		{"", "https://evil.example"},
		{"multipart/form-data; boundary=x", ""},
	} {
		a := e.as(t, "", "POST", "/register_function", c.ct, body, "Origin", c.origin)
		a.wantError(t, http.StatusUnsupportedMediaType, "unsupported_media_type", "application/json")
		if v := a.header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Fatalf("CORS header %q without --cors-origin", v)
		}
	}
	// Nothing was registered by the refused requests.
	if a := e.get(t, "/functions"); strings.Contains(string(a.raw), `"x"`) {
		t.Fatalf("a refused POST registered a function: %s", a.raw)
	}
	// curl -d without -H (the contract's examples): no Origin, so not a browser.
	e.as(t, "", "POST", "/register_function", "application/x-www-form-urlencoded", body).want(t, http.StatusCreated)

	// With --cors-origin, that origin (only) gets the headers.
	c := newEnv(t, server.Config{CORSOrigin: "https://app.example"})
	a := c.as(t, "", "OPTIONS", "/execute_function", "", nil, "Origin", "https://app.example",
		"Access-Control-Request-Method", "POST")
	if a.status != http.StatusNoContent || a.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(a.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", a.status, a.header)
	}
	a = c.as(t, "", "GET", "/functions", "", nil, "Origin", "https://other.example")
	if a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS header for another origin: %v", a.header)
	}
}

func TestRateQuota(t *testing.T) {
	e := newTenantEnv(t, "rate=100")
	fnC := e.registerAs(t, keyC, "noop", samples.Noop)
	fnA := e.registerAs(t, keyA, "noop", samples.Noop)
	start := time.Now()
	accepted := 0
	var refused answer
	for i := 0; i < 1000; i++ {
		a := e.executeAs(t, keyC, fnC, "")
		if a.status != http.StatusCreated {
			refused = a
			break
		}
		accepted++
	}
	elapsed := time.Since(start)
	refused.wantError(t, http.StatusTooManyRequests, "rate_limited", "100 tasks per second")
	if ra, err := strconv.Atoi(refused.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", refused.header.Get("Retry-After"))
	}
	// The bucket holds 100 and refills at 100/s while the loop ran.
	if most := 100 + int(elapsed.Seconds()*100) + 1; accepted < 100 || accepted > most {
		t.Fatalf("%d submissions accepted in %v; want 100 to %d", accepted, elapsed, most)
	}
	// A is not affected; a batch in C counts every task.
	e.executeAs(t, keyA, fnA, "").want(t, http.StatusCreated)
	e.as(t, keyC, "POST", "/execute_batch", "application/json",
		[]byte(`{"function_id":"`+fnC+`","payloads":["","","","",""]}`)).wantError(t, 429, "rate_limited")
}

func TestTaskAndModuleQuotas(t *testing.T) {
	e := newTenantEnv(t, "tasks=3 module_bytes="+strconv.Itoa(2*len(samples.Noop)+10)+" timeout_ms=1000")
	fn := e.registerAs(t, keyC, "noop", samples.Noop)
	batch := func(n int) answer {
		p := strings.TrimSuffix(strings.Repeat(`"",`, n), ",")
		return e.as(t, keyC, "POST", "/execute_batch", "application/json", []byte(`{"function_id":"`+fn+`","payloads":[`+p+`]}`))
	}
	batch(4).wantError(t, 429, "quota_exceeded")
	batch(3).want(t, http.StatusCreated)
	e.executeAs(t, keyC, fn, "").wantError(t, 429, "quota_exceeded")
	if n, _ := e.st.QueueLen(ctxT(t)); n != 3 {
		t.Fatalf("queue holds %d tasks after the refusals, want 3", n)
	}
	e.finish(t, echoOutcome)
	e.executeAs(t, keyC, fn, "").want(t, http.StatusCreated)

	// Module bytes: a second function fits, a third does not; deleting one makes room.
	e.registerAs(t, keyC, "noop2", samples.Noop)
	e.as(t, keyC, "POST", "/register_function?name=noop3", "application/wasm", samples.Noop).wantError(t, 429, "quota_exceeded")
	e.as(t, keyC, "DELETE", "/functions/noop2", "", nil).want(t, 200)
	e.registerAs(t, keyC, "noop3", samples.Noop)

	// Ceilings: asking above is refused, the default is lowered to the ceiling.
	e.as(t, keyC, "POST", "/register_function?name=slow&timeout_ms=5000", "application/wasm", samples.Echo).
		wantError(t, 400, "bad_request", "timeout_ms", "ceiling")
	e.as(t, keyA, "POST", "/register_function?name=slow&timeout_ms=5000", "application/wasm", samples.Echo).want(t, 201)
}

// withSection returns wasm with a custom section of n bytes appended: a distinct module.
func withSection(wasm []byte, tag int, n int) []byte {
	name := "pad" + strconv.Itoa(tag)
	payload := append([]byte{byte(len(name))}, name...)
	payload = append(payload, bytes.Repeat([]byte{byte(tag)}, n)...)
	out := append([]byte{}, wasm...)
	out = append(out, 0)
	out = binary.AppendUvarint(out, uint64(len(payload)))
	return append(out, payload...)
}

func TestDeleteFunction(t *testing.T) {
	e := newTenantEnv(t, "")
	ctx := ctxT(t)
	fn := e.registerAs(t, keyA, "double", samples.DoubleWAT)
	queued := e.executeAs(t, keyA, fn, "21").want(t, 201).str("task_id")
	d := e.as(t, keyA, "DELETE", "/functions/double", "", nil).want(t, 200)
	if d.str("function_id") != fn || d.obj["module_deleted"] != true {
		t.Fatalf("delete answered %s", d.raw)
	}
	e.executeAs(t, keyA, fn, "21").wantError(t, 404, "not_found")
	e.as(t, keyA, "GET", "/functions/"+fn, "", nil).wantError(t, 404, "not_found")
	e.as(t, keyA, "DELETE", "/functions/"+fn, "", nil).wantError(t, 404, "not_found")
	// The queued task fails when claimed, saying why.
	if ran := e.finish(t, echoOutcome); len(ran) != 0 {
		t.Fatalf("a task of a deleted function ran: %v", ran)
	}
	r := e.as(t, keyA, "GET", "/result/"+queued, "", nil).want(t, 200)
	if r.str("status") != "FAILED" || !strings.Contains(string(r.raw), "deleted") {
		t.Fatalf("queued task of a deleted function: %s", r.raw)
	}

	// A module shared by two functions (two namespaces) stays until the last goes.
	f1 := e.registerAs(t, keyA, "e", samples.Echo)
	f2 := e.registerAs(t, keyB, "e", samples.Echo)
	if d := e.as(t, keyA, "DELETE", "/functions/"+f1, "", nil).want(t, 200); d.obj["module_deleted"] != false {
		t.Fatalf("module deleted while B uses it: %s", d.raw)
	}
	tid := e.executeAs(t, keyB, f2, "hi").want(t, 201).str("task_id")
	if ran := e.finish(t, echoOutcome); len(ran) != 1 || ran[0].ID != tid {
		t.Fatalf("B's task after A deleted its copy: %v", ran)
	}
	if _, err := e.st.Module(ctx, ran0Hash(t, e, f2)); err != nil {
		t.Fatalf("module of B's function: %v", err)
	}

	// Memory: a register-delete loop of 100 distinct 64 KiB modules gives it all back.
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
	defer rdb.Close()
	before := usedMemory(t, ctx, rdb)
	for i := range 100 {
		id := e.registerAs(t, keyA, "m"+strconv.Itoa(i), withSection(samples.Noop, i, 64<<10))
		e.as(t, keyA, "DELETE", "/functions/"+id, "", nil).want(t, 200)
	}
	after := usedMemory(t, ctx, rdb)
	if after-before > 1<<20 {
		t.Fatalf("Redis used_memory grew by %d bytes over 100 register-delete rounds (before %d, after %d)", after-before, before, after)
	}
}

func ran0Hash(t *testing.T, e *env, fnID string) string {
	t.Helper()
	f, err := e.st.FunctionIn(ctxT(t), "B", fnID)
	if err != nil {
		t.Fatalf("FunctionIn: %v", err)
	}
	return f.ModuleHash
}

func usedMemory(t *testing.T, ctx context.Context, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatalf("INFO memory: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("no used_memory in INFO memory")
	return 0
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// BenchmarkSubmitKeys measures POST /execute_function through the handler (into a real
// Redis, no dispatcher) without keys, and with a key and every quota on (set never to
// refuse): the cost of authentication and quota checks on the submission path.
func BenchmarkSubmitKeys(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run("keys="+strconv.FormatBool(keyed), func(b *testing.B) {
			cfg := server.Config{}
			if keyed {
				ring, err := server.ParseKeys(strings.NewReader("A "+keyA+" rate=1e12 burst=1000000000000 tasks=1000000000000 module_bytes=1000000000\n"), server.Quota{})
				if err != nil {
					b.Fatal(err)
				}
				cfg.Keys = ring
			}
			e := newEnv(b, cfg)
			key := ""
			if keyed {
				key = keyA
			}
			fn := e.registerAs(b, key, "noop", samples.Noop)
			body := []byte(jsonBody(map[string]any{"function_id": fn, "payload": ""}))
			h := e.srv.Handler()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/execute_function", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					if key != "" {
						req.Header.Set("Authorization", "Bearer "+key)
					}
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusCreated {
						b.Fatalf("%d %s", w.Code, w.Body)
					}
				}
			})
		})
	}
}

// BenchmarkAuthOverhead measures what a key costs a request without Redis: an unknown route
// (answered 404 by the router) without keys, and with a key checked against a ring of 100
// (every entry is compared, in constant time).
func BenchmarkAuthOverhead(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run("keys="+strconv.FormatBool(keyed), func(b *testing.B) {
			cfg := server.Config{}
			var file strings.Builder
			for i := range 99 {
				file.WriteString("ns" + strconv.Itoa(i) + " key-number-" + strconv.Itoa(i) + "-padding-padding\n")
			}
			file.WriteString("A " + keyA + " rate=1e12\n")
			if keyed {
				ring, err := server.ParseKeys(strings.NewReader(file.String()), server.Quota{})
				if err != nil {
					b.Fatal(err)
				}
				cfg.Keys = ring
			}
			srv := server.New(nil, nil, nil, cfg, slog.New(slog.DiscardHandler))
			h := srv.Handler()
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/no/such/route", nil)
				if keyed {
					req.Header.Set("Authorization", "Bearer "+keyA)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusNotFound {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}

func TestClientSeesRetryAfter(t *testing.T) {
	e := newTenantEnv(t, "rate=1 burst=1")
	fn := e.registerAs(t, keyC, "noop", samples.Noop)
	c := client.New(e.url, client.WithAPIKey(keyC))
	if _, err := c.Execute(ctxT(t), fn, nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.Execute(ctxT(t), fn, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "rate_limited" || ae.RetryAfter < time.Second {
		t.Fatalf("second submission at 1/s: %v (%+v)", err, ae)
	}
	if _, err := client.New(e.url).Functions(ctxT(t)); !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Fatalf("client without a key: %v", err)
	}
}

// TestDeleteSeenByOtherServers: a second server that cached the function refuses it (404)
// once the first has deleted it.
func TestDeleteSeenByOtherServers(t *testing.T) {
	e := newTenantEnv(t, "")
	other := server.New(e.st, e.sb, e.done, server.Config{Keys: mustRing(t)}, nil)
	hs := httptest.NewServer(other.Handler())
	t.Cleanup(hs.Close)
	o := &env{st: e.st, url: hs.URL}
	fn := e.registerAs(t, keyA, "double", samples.DoubleWAT)
	o.executeAs(t, keyA, fn, "1").want(t, http.StatusCreated) // cached by the other server now
	e.as(t, keyA, "DELETE", "/functions/"+fn, "", nil).want(t, http.StatusOK)
	o.executeAs(t, keyA, fn, "1").wantError(t, http.StatusNotFound, "not_found", fn)
	o.as(t, keyA, "POST", "/execute_batch", "application/json",
		[]byte(`{"function_id":"`+fn+`","payloads":["MQ=="]}`)).wantError(t, http.StatusNotFound, "not_found")
}

func mustRing(t *testing.T) *server.KeyRing {
	t.Helper()
	ring, err := server.ParseKeys(strings.NewReader("A "+keyA+"\nB "+keyB+"\n"), server.Quota{})
	if err != nil {
		t.Fatal(err)
	}
	return ring
}
