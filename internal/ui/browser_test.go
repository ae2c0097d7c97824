package ui_test

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"faas/dispatch"
	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/samples"
	"faas/sandbox"
	"faas/server"
	"faas/store"
)

// The dashboard in a real headless Chromium, against a real server, a local dispatcher
// running real modules and a real redis-server. One browser serves every subtest (starting
// Chromium is most of the cost). Without Chromium the test skips, unless CI=true, where a
// missing browser is a failure (scripts/deps.sh --with-browser installs it).

//go:embed testdata/axe.min.js
var axeSource string

const (
	keyA = "dashboard-key-of-namespace-A-0123456789"
	keyB = "dashboard-key-of-namespace-B-0123456789"
)

// stack is a server without keys (url) and one with keys of namespaces A and B (keyed),
// on one store, with a local dispatcher of 4 slots.
type stack struct {
	url, keyed string
	log        *testutil.SyncBuffer // every component's log, at debug level
}

func startStack(t *testing.T) stack {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	st := store.New(rdb, store.Config{Prefix: "ui:"})
	ctx, cancel := context.WithCancel(context.Background())
	sb, err := sandbox.New(ctx, sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	done := st.NewDone()
	ring, err := server.ParseKeys(strings.NewReader("A "+keyA+"\nB "+keyB+"\n"), server.Quota{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	run := func(f func() error) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f() }()
	}
	serve := func(cfg server.Config) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := server.New(st, sb, done, cfg, log)
		run(func() error { return srv.Serve(ctx, ln) })
		return "http://" + ln.Addr().String()
	}
	run(func() error { return done.Run(ctx) })
	s := stack{url: serve(server.Config{}), keyed: serve(server.Config{Keys: ring}), log: logs}
	run(func() error {
		return dispatch.Run(ctx, st, sb, dispatch.Config{Mode: "local", Workers: 4, Owner: "ui-test"}, log)
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		sb.Close(context.Background())
	})
	select {
	case <-done.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the done subscription did not start")
	}
	return s
}

// call sends one API request and decodes the JSON answer into out (when not nil).
func call(t *testing.T, method, url, key, ctype string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	return resp.StatusCode
}

func register(t *testing.T, base, key, name string, wasm []byte) string {
	t.Helper()
	var r struct {
		FunctionID string `json:"function_id"`
	}
	if c := call(t, "POST", base+"/register_function?name="+name, key, "application/wasm", wasm, &r); c != 201 {
		t.Fatalf("register %s: %d", name, c)
	}
	return r.FunctionID
}

func execute(t *testing.T, base, fid, input string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"function_id": fid, "payload": []byte(input)})
	var r struct {
		TaskID string `json:"task_id"`
	}
	if c := call(t, "POST", base+"/execute_function", "", "application/json", body, &r); c != 201 {
		t.Fatalf("execute: %d", c)
	}
	return r.TaskID
}

// browser starts Chromium (or skips) and returns a tab's context, and the console errors
// it collected so far.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium on PATH: CI must install it (scripts/deps.sh --with-browser)")
		}
		t.Skip("no Chromium on PATH (apt-get install chromium); the dashboard's browser test is skipped")
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	var mu sync.Mutex
	var errs []string
	messages := chromedp.Console(ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && !m.IsException() {
				continue
			}
			// The browser logs every 4xx answer of fetch as a failed load. The page handles
			// those itself and shows them (401 asks for a key, 404 of /workers says
			// "unknown", a 400 of /register_function shows the server's message); the
			// subtests check what it shows. A 5xx or any JavaScript error counts.
			if m.Source == "network" && strings.Contains(m.Text, "status of 4") {
				continue
			}
			mu.Lock()
			errs = append(errs, m.String())
			mu.Unlock()
		}
	}()
	return ctx, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), errs...) }
}

// poll waits until the JavaScript predicate is true.
func poll(t *testing.T, ctx context.Context, what, predicate string, within time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](predicate, chromedp.WithPollingTimeout(within),
		chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, body)
	}
}

func text(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return s
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// axe runs axe-core's label and contrast rules on the page and fails on any violation.
func axe(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](axeSource)); err != nil {
		t.Fatalf("injecting axe-core: %v", err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: 'rule', values:
		['label', 'color-contrast', 'button-name', 'select-name', 'link-name', 'image-alt', 'document-title', 'html-has-lang']}})
		.then(r => JSON.stringify(r.violations.map(v => ({id: v.id, nodes: v.nodes.map(n => n.html)}))))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe.run: %v", err)
	}
	if out != "[]" {
		t.Errorf("accessibility violations on %s: %s", page, out)
	}
}

func shot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("FAAS_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG (below it, JPEG)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDashboardInBrowser(t *testing.T) {
	ctx, consoleErrors := browser(t)
	s := startStack(t)
	sleepID := register(t, s.url, "", "sleep", samples.Sleep)
	doubleID := register(t, s.url, "", "double", samples.DoubleWAT)

	t.Run("overview counts change while a batch runs", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(s.url+"/ui/#/"))
		poll(t, ctx, "the counts", `document.querySelector('#count-completed') !== null`, 10*time.Second)
		payloads := make([][]byte, 200)
		for i := range payloads {
			payloads[i] = []byte("40")
		}
		body, _ := json.Marshal(map[string]any{"function_id": sleepID, "payloads": payloads})
		if c := call(t, "POST", s.url+"/execute_batch", "", "application/json", body, nil); c != 201 {
			t.Fatalf("execute_batch: %d", c)
		}
		// 200 tasks of 40 ms on 4 slots take about 2 s: the page, refreshed every second,
		// shows tasks unfinished and a count between 0 and 200 on the way.
		seen := map[string]bool{}
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			c := text(t, ctx, `document.querySelector('#count-completed').textContent`)
			busy := text(t, ctx, `String(+document.querySelector('#count-queued').textContent + +document.querySelector('#count-running').textContent)`)
			seen["completed "+c] = true
			if busy != "0" {
				seen["busy"] = true
			}
			if c == "200" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !seen["completed 200"] || !seen["busy"] || len(seen) < 4 {
			t.Fatalf("the overview did not show the batch going through: saw %v", seen)
		}
		poll(t, ctx, "the chart drawn", `document.querySelectorAll('#chart-rate canvas').length === 1`, 5*time.Second)
		poll(t, ctx, "workers unknown", `document.querySelector('#workers').textContent.length > 0`, 10*time.Second)
		axe(t, ctx, "overview")
		shot(t, ctx, "overview")
	})

	var uploaded string
	t.Run("upload a module by the file input", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "echo.wasm")
		if err := os.WriteFile(path, samples.Echo, 0o644); err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(dir, "junk.wasm")
		if err := os.WriteFile(bad, []byte("not wasm at all"), 0o644); err != nil {
			t.Fatal(err)
		}
		do(t, ctx, chromedp.Navigate(s.url+"/ui/#/functions"))
		poll(t, ctx, "the upload form", `document.querySelector('#upload-file') !== null`, 10*time.Second)
		do(t, ctx, chromedp.SendKeys(chromedp.ID("upload-name"), "junk"), chromedp.SetUploadFiles(chromedp.ID("upload-file"), []string{bad}))
		poll(t, ctx, "the refusal", `document.querySelector('#upload-msg').textContent.startsWith('Not registered')`, 10*time.Second)
		if msg := text(t, ctx, `document.querySelector('#upload-msg').textContent`); !strings.Contains(msg, "is not a WebAssembly binary") {
			t.Fatalf("the refusal does not say why: %q", msg)
		}
		do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('#upload-name').value = ''`),
			chromedp.SendKeys(chromedp.ID("upload-name"), "echo-upload"),
			chromedp.SetUploadFiles(chromedp.ID("upload-file"), []string{path}))
		poll(t, ctx, "the registration", `document.querySelector('#upload-msg').textContent.startsWith('Registered')`, 10*time.Second)
		msg := text(t, ctx, `document.querySelector('#upload-msg').textContent`)
		uploaded = strings.TrimSuffix(msg[strings.LastIndex(msg, " ")+1:], ".")
		if len(uploaded) != 36 {
			t.Fatalf("no function id in %q", msg)
		}
		poll(t, ctx, "the table", `[...document.querySelectorAll('#functions a')].some(a => a.textContent === 'echo-upload')`, 10*time.Second)
		axe(t, ctx, "functions")
		shot(t, ctx, "functions")
	})

	t.Run("upload a module by dropping it on the page", func(t *testing.T) {
		// A drop event carrying the file, as the browser fires it at the end of a drag from
		// the desktop (which a headless browser has no way to start).
		do(t, ctx, chromedp.Navigate(s.url+"/ui/#/functions"))
		poll(t, ctx, "the drop area", `document.querySelector('#drop') !== null`, 10*time.Second)
		do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('#upload-name').value = 'dropped'`),
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
				const bytes = Uint8Array.from(atob(%q), c => c.charCodeAt(0));
				const dt = new DataTransfer();
				dt.items.add(new File([bytes], 'echo.wasm', {type: 'application/wasm'}));
				document.querySelector('#drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
			})()`, base64.StdEncoding.EncodeToString(samples.Echo))))
		poll(t, ctx, "the registration", `document.querySelector('#upload-msg').textContent.startsWith('Registered dropped as')`, 10*time.Second)
		poll(t, ctx, "the table", `[...document.querySelectorAll('#functions a')].some(a => a.textContent === 'dropped')`, 10*time.Second)
	})

	t.Run("delete a function, after confirming", func(t *testing.T) {
		do(t, ctx, chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#functions a')].find(a => a.textContent === 'dropped').click()`))
		poll(t, ctx, "the delete button", `document.querySelector('#delete') !== null`, 10*time.Second)
		do(t, ctx, chromedp.Click(chromedp.ID("delete")))
		poll(t, ctx, "the confirmation", `document.querySelector('#delete-confirm') !== null`, 10*time.Second)
		if !strings.Contains(text(t, ctx, `location.hash`), "#/function/") {
			t.Fatal("the first click left the page: no confirmation")
		}
		do(t, ctx, chromedp.Click(chromedp.ID("delete-confirm")))
		poll(t, ctx, "the functions without it", `location.hash === '#/functions' && document.querySelector('#functions table') !== null &&
			![...document.querySelectorAll('#functions a')].some(a => a.textContent === 'dropped')`, 10*time.Second)
		var list struct {
			Functions []struct{ Name string }
		}
		call(t, "GET", s.url+"/functions", "", "", nil, &list)
		for _, f := range list.Functions {
			if f.Name == "dropped" {
				t.Fatal("the API still lists the deleted function")
			}
		}
	})

	t.Run("run it from the form and read the result", func(t *testing.T) {
		if uploaded == "" {
			t.Skip("the upload failed")
		}
		do(t, ctx, chromedp.Navigate(s.url+"/ui/#/function/"+uploaded))
		poll(t, ctx, "the run form", `document.querySelector('#run-input') !== null`, 10*time.Second)
		do(t, ctx, chromedp.SendKeys(chromedp.ID("run-input"), "hello, dashboard"), chromedp.Click(chromedp.ID("run")))
		poll(t, ctx, "the result", `document.querySelector('#task-result')?.textContent === 'hello, dashboard'`, 20*time.Second)
		poll(t, ctx, "the task in the function's recent tasks", `document.querySelectorAll('#recent tbody tr').length === 1`, 10*time.Second)
		axe(t, ctx, "function")
		shot(t, ctx, "function")
	})

	t.Run("open a failed task and see its stderr", func(t *testing.T) {
		id := execute(t, s.url, doubleID, "not a number")
		do(t, ctx, chromedp.Navigate(s.url+"/ui/#/task/"+id))
		poll(t, ctx, "the stderr", `(document.querySelector('#task-stderr')?.textContent || '').length > 0`, 20*time.Second)
		// The finished task kept its (small) input: shown, and run again from the page.
		poll(t, ctx, "the input", `document.querySelector('#task-input')?.textContent === 'not a number'`, 10*time.Second)
		do(t, ctx, chromedp.Click(chromedp.ID("rerun")))
		poll(t, ctx, "a new task page", `!location.hash.endsWith(`+"`"+id+"`"+`) && location.hash.startsWith('#/task/')`, 10*time.Second)
		poll(t, ctx, "the rerun failed the same way", `(document.querySelector('#task-error')?.textContent || '').startsWith('exit') && document.querySelector('#task-input')?.textContent === 'not a number'`, 20*time.Second)
		do(t, ctx, chromedp.Navigate(s.url+"/ui/#/task/"+id))
		poll(t, ctx, "the stderr", `(document.querySelector('#task-stderr')?.textContent || '').length > 0`, 20*time.Second)
		if e := text(t, ctx, `document.querySelector('#task-error').textContent`); !strings.HasPrefix(e, "exit") {
			t.Fatalf("error shown: %q", e)
		}
		axe(t, ctx, "task")
		shot(t, ctx, "task")
		do(t, ctx, chromedp.Navigate(s.url+"/ui/#/tasks"))
		do(t, ctx, chromedp.SetValue(chromedp.ID("f-status"), "FAILED"), chromedp.Click(chromedp.CSS("#filters button")))
		// Only the failed task and its rerun (the batch above completed 200) once the filter
		// applies.
		poll(t, ctx, "the failed list", fmt.Sprintf(`[...document.querySelectorAll('#tasklist a')].some(a => a.textContent === %q) &&
			document.querySelectorAll('#tasklist td.status-COMPLETED').length === 0 &&
			document.querySelectorAll('#tasklist tbody tr').length === 2`, id[:8]), 10*time.Second)
		axe(t, ctx, "tasks")
		shot(t, ctx, "tasks")
	})

	t.Run("cancel a running task from its page", func(t *testing.T) {
		id := execute(t, s.url, sleepID, "3000")
		var st struct{ Status string }
		for i := 0; i < 100 && st.Status != "RUNNING"; i++ {
			call(t, "GET", s.url+"/status/"+id, "", "", nil, &st)
			time.Sleep(20 * time.Millisecond)
		}
		if st.Status != "RUNNING" {
			t.Fatalf("the task is %s, not RUNNING", st.Status)
		}
		// Found in the list of running tasks, opened from there.
		do(t, ctx, chromedp.Navigate(s.url+"/ui/#/tasks"))
		poll(t, ctx, "the filters", `document.querySelector('#f-status') !== null`, 10*time.Second)
		do(t, ctx, chromedp.SetValue(chromedp.ID("f-status"), "RUNNING"), chromedp.Click(chromedp.CSS("#filters button")))
		link := fmt.Sprintf(`[...document.querySelectorAll('#tasklist a')].find(a => a.textContent === %q)`, id[:8])
		poll(t, ctx, "the running task listed", link+` !== undefined`, 10*time.Second)
		do(t, ctx, chromedp.Evaluate[chromedp.Void](link+`.click()`))
		poll(t, ctx, "the cancel button", `document.querySelector('#cancel') !== null`, 10*time.Second)
		do(t, ctx, chromedp.Click(chromedp.ID("cancel")))
		poll(t, ctx, "an answer", `document.querySelector('#cancel-msg') !== null || !document.querySelector('#alert').hidden`, 10*time.Second)
		if strings.Contains(text(t, ctx, `document.querySelector('#alert').textContent`), "cannot cancel") {
			t.Fatalf("the page could not cancel: %s", text(t, ctx, `document.querySelector('#alert').textContent`))
		}
		// Cancelled: FAILED with kind cancelled (task.Kinds of the cancel issue), long before
		// the 3 s sleep would have ended.
		poll(t, ctx, "the task cancelled", `(document.querySelector('#task-error')?.textContent || '').startsWith('cancelled')`, 10*time.Second)
	})

	t.Run("namespace B's key does not show A's functions", func(t *testing.T) {
		register(t, s.keyed, keyA, "secret-of-a", samples.Echo)
		do(t, ctx, chromedp.Navigate(s.keyed+"/ui/#/functions"))
		poll(t, ctx, "the key prompt", `document.querySelector('#alert').textContent.includes('API key')`, 10*time.Second)
		do(t, ctx, chromedp.SendKeys(chromedp.ID("apikey"), keyB), chromedp.Click(chromedp.CSS("#keyform button[type=submit]")))
		poll(t, ctx, "namespace B", `document.querySelector('#ns').textContent === 'B' && document.querySelector('#functions')?.textContent === 'No functions yet.'`, 10*time.Second)
		if strings.Contains(text(t, ctx, `document.body.innerText`), "secret-of-a") {
			t.Fatal("namespace B's page shows A's function")
		}
		do(t, ctx, chromedp.SetValue(chromedp.ID("apikey"), keyA), chromedp.Click(chromedp.CSS("#keyform button[type=submit]")))
		poll(t, ctx, "A's function with A's key", `document.querySelector('#ns').textContent === 'A' && document.body.innerText.includes('secret-of-a')`, 10*time.Second)
		if strings.Contains(text(t, ctx, `location.href`), keyA) {
			t.Fatal("the key is in the URL")
		}
		if n := text(t, ctx, `String(localStorage.length) + ' ' + document.cookie.length`); n != "0 0" {
			t.Fatalf("the page kept something in localStorage or cookies: %s", n)
		}
		// Wrong keys too: the page sent one of each namespace and a refused one.
		do(t, ctx, chromedp.SetValue(chromedp.ID("apikey"), "not-a-key-of-this-server-0123456789"),
			chromedp.Click(chromedp.CSS("#keyform button[type=submit]")))
		poll(t, ctx, "the refusal", `document.querySelector('#alert').textContent.includes('API key')`, 10*time.Second)
		for _, k := range []string{keyA, keyB, "not-a-key-of-this-server"} {
			if strings.Contains(s.log.String(), k) {
				t.Fatalf("a key is in the server's log")
			}
		}
		if !strings.Contains(s.log.String(), "unauthorized") {
			t.Fatal("the debug log holds no refused request: the check above proves nothing")
		}
		do(t, ctx, chromedp.Click(chromedp.ID("forget")))
	})

	t.Run("the live registry shows the test's local dispatcher", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(s.url+"/ui/#/"))
		poll(t, ctx, "the registry", `document.querySelector('#workers table') !== null`, 10*time.Second)
		got := text(t, ctx, `document.querySelector('#workers').innerText`)
		if !strings.Contains(got, "local") || !strings.Contains(got, "/4") {
			t.Fatalf("the registry shows %q, not the local dispatcher with 4 slots", got)
		}
	})

	t.Run("dispatchers and workers from the live registry", func(t *testing.T) {
		// A proxy in front of the real server answers GET /workers with a remote dispatcher
		// and a worker whose id is markup (a hostile worker names itself): everything else
		// goes through.
		target, _ := url.Parse(s.url)
		proxy := httputil.NewSingleHostReverseProxy(target)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/workers" {
				proxy.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"dispatchers":[{"id":"disp-1","mode":"push","address":"tcp://10.0.0.1:5555",
				"version":"dev","started_at":"2026-11-28T06:00:00Z","heard_at":"2026-11-28T07:00:00Z","slots":8,"running":3,
				"workers":[{"id":"w-<b>1</b>","slots":4,"running":2,"done":17,"heard_at":"2026-11-28T07:00:01Z"}]}],
				"healthy":false,"reason":"1 worker silent"}`)
		}))
		defer front.Close()
		do(t, ctx, chromedp.Navigate(front.URL+"/ui/#/"))
		poll(t, ctx, "the registry", `document.querySelector('#workers table') !== null`, 10*time.Second)
		got := text(t, ctx, `document.querySelector('#workers').innerText`)
		for _, want := range []string{"degraded: 1 worker silent", "dispatcher disp-1", "push", "3/8", "worker w-<b>1</b>", "2/4 (17 done)"} {
			if !strings.Contains(got, want) {
				t.Fatalf("the registry shows %q, without %q", got, want)
			}
		}
		if n := text(t, ctx, `String(document.querySelectorAll('#workers b').length)`); n != "0" {
			t.Fatal("a worker id was rendered as HTML")
		}
		axe(t, ctx, "overview with workers")
	})

	t.Run("the accessibility check catches a missing label", func(t *testing.T) {
		// So that the clean runs above mean something: an input without a label fails.
		do(t, ctx, chromedp.Navigate(s.url+"/ui/#/tasks"))
		poll(t, ctx, "the page", `document.querySelector('#filters') !== null`, 10*time.Second)
		do(t, ctx, chromedp.Evaluate[chromedp.Void](axeSource),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('main').append(Object.assign(document.createElement('input'), {id: 'probe'}))`))
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: 'rule', values: ['label']}})
			.then(r => r.violations.map(v => v.id).join(','))`, chromedp.EvalAwaitPromise))
		if err != nil || out != "label" {
			t.Fatalf("axe on an unlabelled input: %q, %v", out, err)
		}
	})

	if errs := consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors in the browser:\n%s", strings.Join(errs, "\n"))
	}
}
