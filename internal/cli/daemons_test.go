package cli

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"faas/internal/metrics/metricstest"
	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/samples"
)

// daemon is a long-running command run in-process.
type daemon struct {
	name   string
	cancel context.CancelFunc
	exited chan int
	stderr *testutil.SyncBuffer
	// wantExit is the exit code stop expects (0 unless a test expects the daemon to fail).
	wantExit int
}

func startDaemon(tb testing.TB, args ...string) *daemon {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{name: args[0], cancel: cancel, exited: make(chan int, 1), stderr: &testutil.SyncBuffer{}}
	go func() { d.exited <- Run(ctx, args, strings.NewReader(""), &testutil.SyncBuffer{}, d.stderr) }()
	tb.Cleanup(func() { d.stop(tb) })
	return d
}

// waitLog waits until the daemon's log matches re and returns the first submatch.
func (d *daemon) waitLog(tb testing.TB, re *regexp.Regexp) string {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(d.stderr.String()); m != nil {
			return m[len(m)-1]
		}
		select {
		case code := <-d.exited:
			d.exited <- code
			tb.Fatalf("%s exited %d: %s", d.name, code, d.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: no log line matching %v: %s", d.name, re, d.stderr.String())
		}
	}
}

// stop cancels the daemon (as SIGINT does) and checks it exits with wantExit within the
// contract's 10 s.
func (d *daemon) stop(tb testing.TB) {
	tb.Helper()
	d.cancel()
	select {
	case code := <-d.exited:
		d.exited <- code
		if code != d.wantExit {
			tb.Errorf("%s exited %d, want %d: %s", d.name, code, d.wantExit, d.stderr.String())
		}
	case <-time.After(stopWithin + 2*time.Second):
		tb.Errorf("%s did not stop within %v", d.name, stopWithin)
	}
}

var (
	listenRE  = regexp.MustCompile(`msg="server listening" addr=(127\.0\.0\.1:\d+)`)
	metricsRE = regexp.MustCompile(`msg="metrics listening" addr=(127\.0\.0\.1:\d+)`)
)

func TestServerDispatcherWorkerCommands(t *testing.T) {
	rs := redistest.Start(t)
	srv := startDaemon(t, "server", "--addr", "127.0.0.1:0", "--redis", rs.URL, "--cache-dir", "")
	url := "http://" + srv.waitLog(t, listenRE)
	double := writeFile(t, "double.wasm", samples.DoubleWAT)
	cliOK(t, url, "", 0, "register", "double", double)

	t.Run("local", func(t *testing.T) {
		t.Setenv("FAAS_REDIS_URL", rs.URL) // the dispatcher takes Redis from the environment
		d := startDaemon(t, "dispatcher", "-m", "local", "-w", "2", "--cache-dir", "", "--metrics-addr", "127.0.0.1:0")
		metricsURL := "http://" + d.waitLog(t, metricsRE) + "/metrics"
		if out, _ := cliOK(t, url, "", 0, "exec", "double", "--input", "21", "--wait", "--timeout", "30s"); out != "42" {
			t.Fatalf("exec printed %q", out)
		}
		m := metricstest.Scrape(t, metricsURL)
		m.Want(t, map[string]float64{
			`faas_dispatch_tasks_finished_total{status="COMPLETED",kind=""}`:  1,
			`faas_dispatch_tasks_finished_total{status="FAILED",kind="exit"}`: 0,
		})
		if _, ok := m.Value("process_open_fds"); !ok {
			t.Error("no process_open_fds on the dispatcher's /metrics")
		}
		d.stop(t)
		if resp, err := http.Get(metricsURL); err == nil { // shut down with the dispatcher
			resp.Body.Close()
			t.Errorf("the metrics server still answers after the dispatcher stopped: %s", resp.Status)
		}
	})
	for _, mode := range []string{"pull", "push"} {
		t.Run(mode, func(t *testing.T) {
			port := strconv.Itoa(testutil.FreePort(t))
			d := startDaemon(t, "dispatcher", "--redis", rs.URL, "-m", mode, "-p", port)
			w := startDaemon(t, "worker", mode, "2", "tcp://127.0.0.1:"+port, "--cache-dir", "")
			if out, _ := cliOK(t, url, "", 0, "exec", "double", "--input", "4", "--wait", "--timeout", "30s"); out != "8" {
				t.Fatalf("exec printed %q", out)
			}
			w.stop(t)
			d.stop(t)
		})
	}
}

// TestWorkerOfTheOtherMode: a worker pointed at a dispatcher of the other mode stops with a
// usage error (exit 2) naming both modes, instead of logging the refusal forever.
func TestWorkerOfTheOtherMode(t *testing.T) {
	rs := redistest.Start(t)
	for _, c := range []struct{ dispatcher, worker string }{{"pull", "push"}, {"push", "pull"}} {
		t.Run(c.worker+" at "+c.dispatcher, func(t *testing.T) {
			port := strconv.Itoa(testutil.FreePort(t))
			startDaemon(t, "dispatcher", "--redis", rs.URL, "-m", c.dispatcher, "-p", port)
			w := startDaemon(t, "worker", c.worker, "1", "tcp://127.0.0.1:"+port, "--cache-dir", "")
			w.wantExit = ExitUsage
			select {
			case code := <-w.exited:
				w.exited <- code // for the cleanup's stop
				want := "runs " + c.dispatcher + " mode, not " + c.worker
				if code != ExitUsage || !strings.Contains(w.stderr.String(), want) {
					t.Fatalf("worker exited %d, stderr %q; want exit 2 saying %q", code, w.stderr.String(), want)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("the worker of the other mode did not stop: %s", w.stderr.String())
			}
		})
	}
}

// TestWaitReplicasWithoutReplica: a server and a dispatcher waiting for a replica that does
// not exist still accept and run tasks (each write waits its timeout), warn, and count the
// writes on /metrics by operation.
func TestWaitReplicasWithoutReplica(t *testing.T) {
	rs := redistest.Start(t)
	wait := []string{"--redis", rs.URL, "--cache-dir", "", "--redis-wait-replicas", "1", "--redis-wait-timeout", "50ms"}
	srv := startDaemon(t, append([]string{"server", "--addr", "127.0.0.1:0"}, wait...)...)
	url := "http://" + srv.waitLog(t, listenRE)
	d := startDaemon(t, append([]string{"dispatcher", "-m", "local", "-w", "1", "--metrics-addr", "127.0.0.1:0"}, wait...)...)
	dispatcherMetrics := "http://" + d.waitLog(t, metricsRE) + "/metrics"
	cliOK(t, url, "", 0, "register", "double", writeFile(t, "double.wasm", samples.DoubleWAT))
	if out, _ := cliOK(t, url, "", 0, "exec", "double", "--input", "21", "--wait", "--timeout", "30s"); out != "42" {
		t.Fatalf("exec printed %q", out)
	}
	srv.waitLog(t, regexp.MustCompile(`writes acknowledged before enough replicas had them.*op=submit`))
	metricstest.Scrape(t, url+"/metrics").Want(t, map[string]float64{`faas_redis_not_replicated_total{op="submit"}`: 1})
	// The result is readable as soon as the complete script ran, before its WAIT ended.
	testutil.WaitFor(t, 10*time.Second, "the dispatcher counting its unreplicated completion", func() bool {
		v, ok := metricstest.Scrape(t, dispatcherMetrics).Value("faas_redis_not_replicated_total", "op", "complete")
		return ok && v == 1
	})
}
