package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"faas/client"
	"faas/internal/testutil"
	"faas/samples"
)

// These tests run the built faas binary: the live registry of dispatchers and workers
// (GET /workers, faas workers, /healthz degraded, the hint of faas exec --wait) and faas logs.

// runFaas runs the binary to its end and returns stdout, stderr and the exit code.
func runFaas(tb testing.TB, timeout time.Duration, args ...string) (string, string, int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, faasBin, args...)
	cmd.Env = append(os.Environ(), "NO_PROXY=*")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatalf("faas %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// TestLiveRegistry: with no dispatcher, /healthz is degraded and faas exec --wait says so;
// GET /workers (faas workers --json) lists a local dispatcher and a push dispatcher with its
// worker, its running tasks while they run and its done ones after; a SIGKILLed dispatcher's
// entry vanishes after its heartbeat timeout, and /healthz is degraded again.
func TestLiveRegistry(t *testing.T) {
	p := newPlatform(t)
	_, c, addr := p.serverAt("server")
	srv := "http://" + addr
	ctx := context.Background()
	if h, err := c.HealthStatus(ctx); err != nil || h.Status != "degraded" || !strings.Contains(h.Reason, "no dispatcher") {
		t.Fatalf("healthz without a dispatcher: %+v, %v", h, err)
	}
	if out, stderr, code := runFaas(t, 10*time.Second, "workers", "--server", srv); code != 0 || out != "" ||
		!strings.Contains(stderr, "no dispatcher has been heard from") {
		t.Fatalf("faas workers without a dispatcher: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	start := time.Now()
	_, stderr, code := runFaas(t, 30*time.Second, "exec", "sleep", "--input", "1", "--wait", "--timeout", "5s", "--server", srv)
	if code != 4 || !strings.Contains(stderr, "no dispatcher has been heard from") {
		t.Fatalf("exec --wait without a dispatcher: exit %d, stderr %q", code, stderr)
	}
	if took := time.Since(start); took < 5*time.Second {
		t.Fatalf("exec --wait returned after %v", took)
	}

	local, _ := p.dispatcher("local", "local", "-w", "2")
	push, endpoint := p.dispatcher("push", "push")
	p.worker("worker", "push", 2, endpoint)
	workers := func() client.Workers {
		out, stderr, code := runFaas(t, 10*time.Second, "workers", "--json", "--server", srv)
		if code != 0 {
			t.Fatalf("faas workers --json: exit %d: %s", code, stderr)
		}
		var w client.Workers
		if err := json.Unmarshal([]byte(out), &w); err != nil {
			t.Fatalf("faas workers --json: %v: %s", err, out)
		}
		return w
	}
	find := func(w client.Workers, mode string) *client.Dispatcher {
		for i := range w.Dispatchers {
			if w.Dispatchers[i].Mode == mode {
				return &w.Dispatchers[i]
			}
		}
		return nil
	}
	testutil.WaitForProgress(t, 20*time.Second, "both dispatchers and the worker listed", func() (bool, string) {
		w := workers()
		l, ps := find(w, "local"), find(w, "push")
		return w.Healthy && l != nil && ps != nil && l.Slots == 2 && len(ps.Workers) == 1 && ps.Workers[0].Slots == 2 &&
			strings.HasPrefix(ps.Address, "127.0.0.1:"), fmt.Sprintf("%+v", w)
	})
	if h, err := c.HealthStatus(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("healthz with dispatchers: %+v, %v", h, err)
	}
	// Six 1.5 s tasks on 2 + 2 slots: both dispatchers run some at once.
	ids := p.submit(6, 1500)
	sawLocal, sawPush := false, false
	testutil.WaitForProgress(t, 20*time.Second, "tasks seen running at the local dispatcher and the push worker", func() (bool, string) {
		w := workers()
		if l := find(w, "local"); l != nil && l.Running > 0 {
			sawLocal = true
		}
		if ps := find(w, "push"); ps != nil && len(ps.Workers) == 1 && ps.Workers[0].Running > 0 && ps.Running > 0 {
			sawPush = true
		}
		return sawLocal && sawPush, fmt.Sprintf("%+v", w)
	})
	rs := p.waitAll(ids, 30*time.Second)
	ranAtWorker := int64(0)
	for _, r := range rs {
		if strings.HasPrefix(r.Worker, "local:") {
			continue
		}
		ranAtWorker++
	}
	// done counts the outcomes the worker reported, applied or not: a task whose lease ran out
	// under load and that ran again at the local dispatcher counts at both (seen once in CI:
	// done 5 with 4 records naming the worker).
	testutil.WaitForProgress(t, 10*time.Second, "the worker's done count", func() (bool, string) {
		ps := find(workers(), "push")
		return ps != nil && len(ps.Workers) == 1 && ps.Workers[0].Done > 0 && ps.Workers[0].Done >= ranAtWorker && ps.Workers[0].Done <= int64(len(ids)) &&
				ps.Workers[0].Running == 0,
			fmt.Sprintf("%+v, want done between %d and %d", ps, ranAtWorker, len(ids))
	})
	table, _, code := runFaas(t, 10*time.Second, "workers", "--server", srv)
	if code != 0 || !strings.Contains(table, "DISPATCHER") || !strings.Contains(table, "push") || !strings.Contains(table, "local") {
		t.Fatalf("faas workers: exit %d:\n%s", code, table)
	}

	push.kill(t)
	killed := time.Now()
	testutil.WaitForProgress(t, 10*time.Second, "the killed push dispatcher's entry to expire", func() (bool, string) {
		w := workers()
		return find(w, "push") == nil && find(w, "local") != nil, fmt.Sprintf("%+v", w)
	})
	t.Logf("the SIGKILLed dispatcher left GET /workers %v after the kill (heartbeat timeout %s)",
		time.Since(killed).Round(10*time.Millisecond), testHeartbeatTimeout)
	local.kill(t)
	testutil.WaitForProgress(t, 10*time.Second, "healthz degraded once no dispatcher is alive", func() (bool, string) {
		h, err := c.HealthStatus(ctx)
		return err == nil && h.Status == "degraded", fmt.Sprintf("%+v %v", h, err)
	})
}

// TestLogsFollow: faas logs --follow prints a failing function's stderr when its task ends
// (the latency from the recorded end to the line read is measured and logged); --since,
// --failed and --json select and format past outcomes.
func TestLogsFollow(t *testing.T) {
	p := newPlatform(t)
	_, c, addr := p.serverAt("server")
	srv := "http://" + addr
	p.dispatcher("local", "local", "-w", "2")
	ctx := context.Background()
	fnID, err := c.Register(ctx, "double_c", samples.DoubleC, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One outcome before following: the follower prints it as history, which says it is
	// connected.
	first, _ := c.Execute(ctx, fnID, []byte("1"))
	if tk, err := c.Result(ctx, first, 20*time.Second); err != nil || tk.Status != client.StatusCompleted {
		t.Fatalf("first task: %+v, %v", tk, err)
	}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	follow := exec.CommandContext(fctx, faasBin, "logs", "double_c", "--follow", "--server", srv)
	follow.Cancel = func() error { return follow.Process.Signal(syscall.SIGINT) }
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var ferr testutil.SyncBuffer
	follow.Stderr = &ferr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	type line struct {
		text string
		at   time.Time
	}
	lines := make(chan line, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- line{sc.Text(), time.Now()}
		}
		close(lines)
	}()
	next := func() line {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("faas logs --follow ended: %s", ferr.String())
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatalf("no line from faas logs --follow: %s", ferr.String())
		}
		return line{}
	}
	if l := next(); !strings.Contains(l.text, first) || !strings.Contains(l.text, "COMPLETED") {
		t.Fatalf("history line %q", l.text)
	}
	const rounds = 20
	var lat []time.Duration
	for range rounds {
		id, err := c.Execute(ctx, fnID, []byte("abc"))
		if err != nil {
			t.Fatal(err)
		}
		l := next()
		tk, err := c.Result(ctx, id, 10*time.Second)
		if err != nil || tk.Status != client.StatusFailed {
			t.Fatalf("task %s: %+v, %v", id, tk, err)
		}
		if !strings.Contains(l.text, id) || !strings.Contains(l.text, "FAILED") || !strings.Contains(l.text, "double: not an integer") {
			t.Fatalf("followed line %q for task %s", l.text, id)
		}
		lat = append(lat, l.at.Sub(tk.FinishedAt))
	}
	slices.Sort(lat)
	t.Logf("faas logs --follow: task end (recorded) to line read, %d failing tasks: min %v, median %v, max %v",
		rounds, lat[0].Round(100*time.Microsecond), lat[rounds/2].Round(100*time.Microsecond), lat[rounds-1].Round(100*time.Microsecond))
	if lat[rounds/2] > time.Second {
		t.Errorf("median latency %v; want well under a second (the issue asks 100 ms)", lat[rounds/2])
	}
	stop()
	_, _ = io.Copy(io.Discard, stdout)
	// Wait reports the cancelled context; the exit status is what the user sees.
	_ = follow.Wait()
	if code := follow.ProcessState.ExitCode(); code != 0 {
		t.Errorf("faas logs --follow after SIGINT: exit %d: %s", code, ferr.String())
	}

	out, stderr, code := runFaas(t, 10*time.Second, "logs", "double_c", "--since", "1m", "--failed", "--json", "--server", srv)
	if code != 0 {
		t.Fatalf("faas logs --json: exit %d: %s", code, stderr)
	}
	jl := strings.Split(strings.TrimSpace(out), "\n")
	if len(jl) != rounds {
		t.Fatalf("--failed --since 1m: %d lines, want %d:\n%s", len(jl), rounds, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(jl[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m["status"] != "FAILED" || m["kind"] != "exit" || m["stderr_encoding"] != "utf-8" ||
		!strings.HasPrefix(fmt.Sprint(m["stderr"]), "double: not an integer") || m["function_id"] != fnID {
		t.Fatalf("--json line %s", jl[0])
	}
	all, _, _ := runFaas(t, 10*time.Second, "logs", "double_c", "--server", srv)
	if n := strings.Count(all, "\n"); n != rounds+1 {
		t.Fatalf("faas logs: %d lines, want %d:\n%s", n, rounds+1, all)
	}
	if none, _, _ := runFaas(t, 10*time.Second, "logs", "double_c", "--since", "1ms", "--server", srv); none != "" {
		t.Fatalf("--since 1ms: %q", none)
	}
	if _, stderr, code := runFaas(t, 10*time.Second, "logs", "nope", "--server", srv); code != 3 || !strings.Contains(stderr, `no function "nope"`) {
		t.Fatalf("logs of an unknown function: exit %d, %q", code, stderr)
	}
}

// TestWorkerWithoutDispatcher: faas worker pointed at an endpoint where nothing answers
// warns within about 5 s and, with --connect-timeout, gives up with exit 3.
func TestWorkerWithoutDispatcher(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
	endpoint := fmt.Sprintf("tcp://127.0.0.1:%d", testutil.FreePort(t)) // nothing listens there
	for _, c := range []struct {
		mode, timeout string
		warn          bool
	}{{"push", "6500ms", true}, {"pull", "2s", false}} {
		start := time.Now()
		_, stderr, code := runFaas(t, 30*time.Second, "worker", c.mode, "1", endpoint, "--cache-dir", cacheDir, "--connect-timeout", c.timeout)
		took := time.Since(start)
		limit, _ := time.ParseDuration(c.timeout)
		if code != 3 || !strings.Contains(stderr, "no dispatcher answered at "+endpoint+" within --connect-timeout "+limit.String()) {
			t.Fatalf("worker %s --connect-timeout %s: exit %d, stderr %q", c.mode, c.timeout, code, stderr)
		}
		if took < limit || took > limit+5*time.Second {
			t.Errorf("worker %s --connect-timeout %s gave up after %v", c.mode, c.timeout, took)
		}
		warned := strings.Contains(stderr, "no answer from the dispatcher yet") && strings.Contains(stderr, "waited=5s")
		if warned != c.warn {
			t.Errorf("worker %s --connect-timeout %s: warned %v, want %v: %s", c.mode, c.timeout, warned, c.warn, stderr)
		}
		t.Logf("worker %s --connect-timeout %s: exit 3 after %v", c.mode, c.timeout, took.Round(10*time.Millisecond))
	}
}
