package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"faas/dispatch"
	"faas/internal/cli/batch"
	"faas/internal/metrics/metricstest"
	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/samples"
	"faas/sandbox"
	"faas/server"
	"faas/store"
)

// startPlatform runs a real Redis, the server on a loopback port and a local dispatcher,
// in-process, and returns the server's URL. Everything stops at the end of the test.
func startPlatform(tb testing.TB) string {
	tb.Helper()
	rs := redistest.Start(tb)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rdb, err := store.Open(rs.URL)
	if err != nil {
		tb.Fatal(err)
	}
	st := store.New(rdb, store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	sb, err := sandbox.New(ctx, sandbox.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := st.NewDone()
	srv := server.New(st, sb, done, server.Config{}, log)
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{
		done.Run,
		func(ctx context.Context) error { return srv.Serve(ctx, ln) },
		func(ctx context.Context) error {
			return dispatch.Run(ctx, st, sb, dispatch.Config{Mode: "local", Workers: 4}, log)
		},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				tb.Errorf("platform component: %v", err)
			}
		}()
	}
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = sb.Close(context.Background())
		_ = rdb.Close()
	})
	return "http://" + ln.Addr().String()
}

func writeFile(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n$`)

// cli runs a client command against url and checks its exit code.
func cliOK(tb testing.TB, url, stdin string, wantCode int, args ...string) (string, string) {
	tb.Helper()
	out, errs, code := runCLI(tb, context.Background(), stdin, append(args, "--server", url)...)
	if code != wantCode {
		tb.Fatalf("faas %s: exit %d, want %d; stdout %q; stderr %q", strings.Join(args, " "), code, wantCode, out, errs)
	}
	return out, errs
}

func TestEndToEnd(t *testing.T) {
	url := startPlatform(t)
	double := writeFile(t, "double.wasm", samples.DoubleWAT)
	exit3 := writeFile(t, "exit.wasm", samples.Hostile["exit_nonzero"])

	fnID, _ := cliOK(t, url, "", 0, "register", "double", double)
	if !uuidRE.MatchString(fnID) {
		t.Fatalf("register printed %q, want a function_id alone", fnID)
	}
	fnID = strings.TrimSpace(fnID)

	t.Run("exec by name waits for the result", func(t *testing.T) {
		out, _ := cliOK(t, url, "", 0, "exec", "double", "--input", "21", "--wait")
		if out != "42" {
			t.Fatalf("stdout %q, want 42 exactly", out)
		}
	})
	t.Run("flags before arguments", func(t *testing.T) {
		out, _ := cliOK(t, url, "", 0, "exec", "--wait", "--input", "5", "--timeout", "30s", fnID)
		if out != "10" {
			t.Fatalf("stdout %q, want 10", out)
		}
	})
	t.Run("input from a file and stdin", func(t *testing.T) {
		in := writeFile(t, "in.txt", []byte("  7\n"))
		if out, _ := cliOK(t, url, "", 0, "exec", "double", "--input-file", in, "--wait"); out != "14" {
			t.Fatalf("stdout %q", out)
		}
		if out, _ := cliOK(t, url, "8", 0, "exec", "double", "--input-file", "-", "--wait"); out != "16" {
			t.Fatalf("stdout %q", out)
		}
	})
	t.Run("exec then status and result", func(t *testing.T) {
		out, _ := cliOK(t, url, "", 0, "exec", fnID, "--input", "50")
		if !uuidRE.MatchString(out) {
			t.Fatalf("exec printed %q, want a task_id alone", out)
		}
		id := strings.TrimSpace(out)
		if res, _ := cliOK(t, url, "", 0, "result", id, "--wait", "20s"); res != "100" {
			t.Fatalf("result %q", res)
		}
		if st, _ := cliOK(t, url, "", 0, "status", id); st != "COMPLETED\n" {
			t.Fatalf("status %q", st)
		}
		raw, _ := cliOK(t, url, "", 0, "result", id, "--json")
		var ans struct{ TaskID, Status, Result string }
		if err := json.Unmarshal([]byte(raw), &ans); err != nil || ans.Status != "COMPLETED" || ans.Result != "MTAw" {
			t.Fatalf("result --json %q: %+v %v", raw, ans, err)
		}
	})
	t.Run("failed task exits 1", func(t *testing.T) {
		cliOK(t, url, "", 0, "register", "exit3", exit3)
		out, errs := cliOK(t, url, "", 1, "exec", "exit3", "--wait")
		if out != "" || !strings.HasPrefix(errs, "exit: ") {
			t.Fatalf("stdout %q, stderr %q; want nothing and \"exit: ...\"", out, errs)
		}
		idOut, _ := cliOK(t, url, "", 0, "exec", "exit3")
		id := strings.TrimSpace(idOut)
		_, errs = cliOK(t, url, "", 1, "result", id, "--wait", "20s")
		if !strings.HasPrefix(errs, "exit: ") {
			t.Fatalf("stderr %q", errs)
		}
		if st, _ := cliOK(t, url, "", 0, "status", id); st != "FAILED\n" {
			t.Fatalf("status %q", st)
		}
		raw, _ := cliOK(t, url, "", 1, "exec", "exit3", "--wait", "--json")
		if !strings.Contains(raw, `"kind":"exit"`) {
			t.Fatalf("--json %q", raw)
		}
	})
	t.Run("failed task shows the function's stderr", func(t *testing.T) {
		cliOK(t, url, "", 0, "register", "double_c", writeFile(t, "double_c.wasm", samples.DoubleC))
		for _, args := range [][]string{{"exec", "double_c", "--input", "abc", "--wait"}} {
			out, errs := cliOK(t, url, "", 1, args...)
			if out != "" || !strings.HasPrefix(errs, "exit: exit code 2\n") || !strings.Contains(errs, "double: not an integer") {
				t.Fatalf("%v: stdout %q, stderr %q; want the kind, then the function's stderr", args, out, errs)
			}
		}
		lines, _ := cliOK(t, url, "\"abc\"\n\"4\"\n", 1, "batch", "double_c", "--quiet")
		if !strings.Contains(lines, `"stderr":"double: not an integer\n","stderr_encoding":"utf-8"`) {
			t.Fatalf("batch lines %q carry no stderr", lines)
		}
	})
	t.Run("refused requests exit 3", func(t *testing.T) {
		_, errs := cliOK(t, url, "", 3, "exec", "no-such-function", "--input", "1")
		if !strings.Contains(errs, "no-such-function") {
			t.Fatalf("stderr %q", errs)
		}
		cliOK(t, url, "", 3, "status", "0f8fad5b-d9cb-469f-a165-70867728950e")
		cliOK(t, url, "", 3, "result", "not-a-task-id")
		notWasm := writeFile(t, "x.wasm", []byte("not wasm"))
		if out, _ := cliOK(t, url, "", 3, "register", "bad", notWasm); out != "" {
			t.Fatalf("stdout %q", out)
		}
	})
	t.Run("functions lists the newest first", func(t *testing.T) {
		out, _ := cliOK(t, url, "", 0, "functions")
		if !strings.HasPrefix(out, "") || !strings.Contains(out, fnID+"\tdouble\t") {
			t.Fatalf("functions:\n%s", out)
		}
	})
}

func TestResultNotFinished(t *testing.T) {
	url := startPlatform(t)
	sleep := writeFile(t, "sleep.wasm", samples.Sleep)
	cliOK(t, url, "", 0, "register", "sleep", sleep)
	out, _ := cliOK(t, url, "", 0, "exec", "sleep", "--input", "3000")
	id := strings.TrimSpace(out)
	out, errs := cliOK(t, url, "", ExitNotFinished, "result", id)
	if out != "" || !strings.Contains(errs, "not finished") {
		t.Fatalf("stdout %q, stderr %q", out, errs)
	}
	_, errs = cliOK(t, url, "", ExitNotFinished, "exec", "sleep", "--input", "3000", "--wait", "--timeout", "300ms")
	if !strings.Contains(errs, "faas result ") {
		t.Fatalf("stderr %q", errs)
	}
	if out, _ := cliOK(t, url, "", 0, "result", id, "--wait", "20s"); out != "slept 3000 ms" {
		t.Fatalf("result %q", out)
	}
}

// checkBatchOutput checks one JSON line per input in order, input i being the number
// first+i; failAt is the input that fails (-1: none).
func checkBatchOutput(tb testing.TB, out io.Reader, n, first, failAt int) {
	tb.Helper()
	sc := bufio.NewScanner(out)
	i := 0
	for ; sc.Scan(); i++ {
		var l batch.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			tb.Fatalf("line %d: %v: %s", i, err, sc.Bytes())
		}
		if l.Index != i {
			tb.Fatalf("line %d has index %d", i, l.Index)
		}
		if i == failAt {
			if l.Status != "FAILED" || l.Error == nil || l.Error.Kind != "exit" {
				tb.Fatalf("input %d: %s, want FAILED kind exit", i, sc.Bytes())
			}
			continue
		}
		if l.Status != "COMPLETED" || l.Result != fmt.Sprint(2*(first+i)) || l.ResultEncoding != "utf-8" {
			tb.Fatalf("input %d: %s", i, sc.Bytes())
		}
	}
	if i != n {
		tb.Fatalf("%d output lines, want %d", i, n)
	}
}

func TestBatch(t *testing.T) {
	url := startPlatform(t)
	cliOK(t, url, "", 0, "register", "double", writeFile(t, "double.wasm", samples.DoubleWAT))

	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	t.Run(fmt.Sprintf("%d inputs in order, one failing", n), func(t *testing.T) {
		var in strings.Builder
		for i := range n {
			switch {
			case i == 432:
				in.WriteString("\"not a number\"\n") // double exits 2
			case i%3 == 0:
				fmt.Fprintf(&in, "%d\n", i) // a number: its JSON text
			case i%3 == 1:
				fmt.Fprintf(&in, "%q\n\n", fmt.Sprint(i)) // a string, then a blank line
			default:
				fmt.Fprintf(&in, "{\"payload\": %q}\n", b64(fmt.Sprint(i)))
			}
		}
		start := time.Now()
		out, errs := cliOK(t, url, in.String(), 1, "batch", "double", "--chunk", "700")
		t.Logf("%d inputs in %v", n, time.Since(start))
		checkBatchOutput(t, strings.NewReader(out), n, 0, 432)
		if !strings.Contains(errs, fmt.Sprintf("1 of %d tasks FAILED", n)) {
			t.Errorf("stderr %q", errs)
		}
	})
	t.Run("all completed from a file exits 0", func(t *testing.T) {
		var in strings.Builder
		for i := range 300 {
			fmt.Fprintf(&in, "%d\n", i)
		}
		f := writeFile(t, "in.jsonl", []byte(in.String()))
		out, errs := cliOK(t, url, "", 0, "batch", "--inputs", f, "double", "--quiet")
		checkBatchOutput(t, strings.NewReader(out), 300, 0, -1)
		if errs != "" {
			t.Errorf("stderr %q", errs)
		}
	})
	t.Run("a bad line in a file submits nothing", func(t *testing.T) {
		f := writeFile(t, "bad.jsonl", []byte("1\n2\n\nnot json\n3\n"))
		out, errs := cliOK(t, url, "", 2, "batch", "double", "--inputs", f)
		if out != "" || !strings.Contains(errs, "line 4") {
			t.Fatalf("stdout %q, stderr %q", out, errs)
		}
	})
	t.Run("a bad line on stdin runs what came before", func(t *testing.T) {
		out, errs := cliOK(t, url, "1\n2\n{\"payload\": 5}\n3\n", 2, "batch", "double")
		if !strings.Contains(errs, "stdin: line 3") {
			t.Fatalf("stderr %q", errs)
		}
		checkBatchOutput(t, strings.NewReader(out), 2, 1, -1)
	})
	t.Run("unknown function", func(t *testing.T) {
		cliOK(t, url, "1\n", 3, "batch", "nope")
	})
	t.Run("--json prints the server's task answers in input order", func(t *testing.T) {
		out, _ := cliOK(t, url, "1\n\"x\"\n3\n", 1, "batch", "double", "--json", "--quiet")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("%d lines, want 3: %q", len(lines), out)
		}
		for i, want := range []struct{ status, result, kind string }{
			{"COMPLETED", b64("2"), ""}, {"FAILED", b64("exit: exit code 2"), "exit"}, {"COMPLETED", b64("6"), ""},
		} {
			var got struct {
				TaskID string `json:"task_id"`
				Status string `json:"status"`
				Result string `json:"result"`
				Error  *struct {
					Kind string `json:"kind"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
				t.Fatalf("line %d %q: %v", i, lines[i], err)
			}
			if got.TaskID == "" || got.Status != want.status || got.Result != want.result ||
				(want.kind != "") != (got.Error != nil) || (got.Error != nil && got.Error.Kind != want.kind) {
				t.Errorf("line %d: %q, want status %s, result %s, kind %q", i, lines[i], want.status, want.result, want.kind)
			}
		}
	})
}

func b64(s string) string { return base64Std([]byte(s)) }

func TestDev(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs testutil.SyncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Run(ctx, []string{"dev", "--addr", "127.0.0.1:0", "-w", "2", "--cache-dir", ""}, strings.NewReader(""), &out, &errs)
	}()
	urlRE := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`)
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == ""; {
		if m := urlRE.FindStringSubmatch(errs.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case code := <-exited:
			t.Fatalf("dev exited %d: %s", code, errs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev did not say where it listens: %s", errs.String())
		}
	}
	if !strings.Contains(errs.String(), "keeps nothing on disk") {
		t.Errorf("dev log does not say the embedded Redis keeps nothing on disk: %s", errs.String())
	}
	cliOK(t, url, "", 0, "register", "double", writeFile(t, "double.wasm", samples.DoubleWAT))
	if res, _ := cliOK(t, url, "", 0, "exec", "double", "--input", "21", "--wait", "--timeout", "20s"); res != "42" {
		t.Fatalf("exec printed %q", res)
	}
	bout, _ := cliOK(t, url, "1\n2\n3\n", 0, "batch", "double")
	checkBatchOutput(t, strings.NewReader(bout), 3, 1, -1)

	// One /metrics serves the server's, the dispatcher's and the Go runtime's metrics.
	m := metricstest.Scrape(t, url+"/metrics")
	m.Want(t, map[string]float64{
		"faas_tasks_submitted_total":                                     4,
		`faas_dispatch_tasks_finished_total{status="COMPLETED",kind=""}`: 4,
		"faas_redis_up": 1,
	})
	if _, ok := m.Value("go_goroutines"); !ok {
		t.Error("no go_goroutines on /metrics")
	}

	stopped := time.Now()
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("dev exited %d after cancel: %s", code, errs.String())
		}
		t.Logf("dev stopped in %v", time.Since(stopped))
	case <-time.After(stopWithin + 2*time.Second):
		t.Fatalf("dev did not stop within %v", stopWithin)
	}
	if out.String() != "" {
		t.Errorf("dev wrote on stdout: %q", out.String())
	}
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
