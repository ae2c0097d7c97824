// Package e2e holds fault-injection tests of the whole platform: the built faas binary run as
// real processes (server, dispatchers, workers), a real redis-server per test and real ZeroMQ
// between dispatchers and workers. Faults are injected with signals (SIGKILL, SIGTERM,
// SIGSTOP/SIGCONT) to those processes and to redis-server; the tests count submitted against
// terminal tasks in Redis.
package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"faas/client"
	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/samples"
	"faas/store"
	"faas/task"
)

var (
	faasBin  string // the faas binary built by TestMain
	cacheDir string // wazero compilation cache shared by every process of the run
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // every test skips (newPlatform); no binary needed
	}
	dir, err := os.MkdirTemp("", "faas-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	faasBin = filepath.Join(dir, "faas")
	cacheDir = filepath.Join(dir, "cache")
	// The binary is built without -race even when the tests are raced: the processes are
	// what the faults hit, and an unraced build starts and runs faster.
	build := exec.Command("go", "build", "-o", faasBin, "./cmd/faas")
	build.Dir = ".." // the module root
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/faas: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// ---------------------------------------------------------------------------------------
// Processes

// proc is one faas process started by a test. Its stderr is kept and logged if the test
// fails (or always, with E2E_LOGS=1); cleanup kills it if it still runs.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *testutil.SyncBuffer
	exited chan struct{}
	err    error // Wait's result, set before exited closes
}

// startProc runs faasBin with args (plus --cache-dir). name labels its logs.
func startProc(tb testing.TB, name string, args ...string) *proc {
	tb.Helper()
	args = append(args, "--cache-dir", cacheDir)
	p := &proc{name: name, out: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(faasBin, args...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.cmd.Env = append(os.Environ(), "NO_PROXY=*")
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	tb.Cleanup(func() {
		if !p.done() {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if tb.Failed() || os.Getenv("E2E_LOGS") != "" {
			tb.Logf("---- %s (pid %d, %s) output, last lines:\n%s", p.name, p.cmd.Process.Pid,
				p.cmd.ProcessState, tail(p.out.String(), logLines))
		}
	})
	return p
}

// logLines is how many of a process's last lines a failing test shows (E2E_LOG_LINES).
var logLines = 40

func init() {
	if n, err := strconv.Atoi(os.Getenv("E2E_LOG_LINES")); err == nil && n > 0 {
		logLines = n
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *proc) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("%s: signal %v: %v", p.name, sig, err)
	}
}

// kill ends the process with SIGKILL (a crash) and waits for it.
func (p *proc) kill(tb testing.TB) {
	tb.Helper()
	p.signal(tb, syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and logs how long the process took to exit; the test fails if it did
// not exit within limit, or exited with an error.
func (p *proc) stop(tb testing.TB, limit time.Duration) {
	tb.Helper()
	start := time.Now()
	p.signal(tb, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(limit):
		tb.Fatalf("%s did not exit within %v of SIGTERM", p.name, limit)
	}
	tb.Logf("%s stopped %v after SIGTERM", p.name, time.Since(start).Round(time.Millisecond))
	if p.err != nil {
		tb.Errorf("%s exited after SIGTERM with %v", p.name, p.err)
	}
}

// ---------------------------------------------------------------------------------------
// A platform: one redis-server, a store client on it, and the sleep function registered.

type platform struct {
	tb    testing.TB
	redis *redistest.Server
	st    *store.Store
	fn    store.Function
}

// newPlatform starts a redis-server of its own (redisArgs are added to its command line)
// and registers samples.Sleep in it.
func newPlatform(tb testing.TB, redisArgs ...string) *platform {
	tb.Helper()
	if testing.Short() {
		tb.Skip("e2e: fault-injection tests on real processes are skipped with -short")
	}
	rs := redistest.Start(tb, redisArgs...)
	p := platformOn(tb, rs.URL)
	p.redis = rs
	return p
}

// platformOn is a platform on the Redis at url (started elsewhere), with samples.Sleep
// registered in it.
func platformOn(tb testing.TB, url string) *platform {
	return platformWith(tb, url, store.Config{})
}

// platformWith is platformOn with the store's configuration.
func platformWith(tb testing.TB, url string, cfg store.Config) *platform {
	tb.Helper()
	rdb, err := store.Open(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, cfg)
	ctx := context.Background()
	sum := sha256.Sum256(samples.Sleep)
	fn := store.Function{ID: uuid.NewString(), Name: "sleep", ModuleHash: hex.EncodeToString(sum[:]),
		ModuleSize: int64(len(samples.Sleep))}
	if err := st.PutModule(ctx, fn.ModuleHash, samples.Sleep); err != nil {
		tb.Fatal(err)
	}
	if err := st.CreateFunction(ctx, fn); err != nil {
		tb.Fatal(err)
	}
	return &platform{tb: tb, st: st, fn: fn}
}

// Lease and heartbeat settings short enough for tests: a dead dispatcher's tasks come back
// within 2 s, a silent worker is lost after 1.5 s.
const (
	testLease            = "2s"
	testHeartbeat        = "250ms"
	testHeartbeatTimeout = "1500ms"
)

// dispatcher starts `faas dispatcher -m mode` on the platform's Redis. For pull and push
// it picks a free port and returns the workers' endpoint.
func (p *platform) dispatcher(name, mode string, extra ...string) (*proc, string) {
	p.tb.Helper()
	endpoint := ""
	if mode != "local" {
		endpoint = fmt.Sprintf("tcp://127.0.0.1:%d", testutil.FreePort(p.tb))
	}
	return p.dispatcherAt(name, mode, endpoint, extra...), endpoint
}

// dispatcherAt starts a dispatcher serving workers on endpoint ("" in local mode): a
// restarted remote-mode dispatcher takes its predecessor's endpoint.
func (p *platform) dispatcherAt(name, mode, endpoint string, extra ...string) *proc {
	p.tb.Helper()
	args := []string{"dispatcher", "-m", mode, "--redis", p.redis.URL, "--lease", testLease,
		"--heartbeat", testHeartbeat, "--heartbeat-timeout", testHeartbeatTimeout}
	if endpoint != "" {
		args = append(args, "-p", endpoint[strings.LastIndex(endpoint, ":")+1:])
	}
	return startProc(p.tb, name, append(args, extra...)...)
}

// worker starts `faas worker mode slots endpoint`.
func (p *platform) worker(name, mode string, slots int, endpoint string) *proc {
	p.tb.Helper()
	return startProc(p.tb, name, "worker", mode, strconv.Itoa(slots), endpoint, "--heartbeat", testHeartbeat)
}

// server starts `faas server` and waits until it answers /healthz; it returns a client.
func (p *platform) server(name string) (*proc, *client.Client) {
	p.tb.Helper()
	sp, c, _ := p.serverAt(name)
	return sp, c
}

// serverAt is server with extra arguments, returning the address too.
func (p *platform) serverAt(name string, extra ...string) (*proc, *client.Client, string) {
	p.tb.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(p.tb))
	sp := startProc(p.tb, name, append([]string{"server", "--addr", addr, "--redis", p.redis.URL}, extra...)...)
	return sp, waitHealthy(p.tb, sp, addr), addr
}

// waitHealthy waits until the process sp serving the API on addr answers /healthz.
func waitHealthy(tb testing.TB, sp *proc, addr string) *client.Client {
	tb.Helper()
	name := sp.name
	c := client.New("http://" + addr)
	testutil.WaitForProgress(tb, 20*time.Second, name+" answers /healthz", func() (bool, string) {
		if sp.done() {
			tb.Fatalf("%s exited at start: %v", name, sp.err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := c.Health(ctx)
		return err == nil, fmt.Sprint(err)
	})
	return c
}

// submit queues n sleep tasks of ms milliseconds each, directly in the store.
func (p *platform) submit(n, ms int) []string {
	p.tb.Helper()
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = []byte(strconv.Itoa(ms))
	}
	ids, err := p.st.Submit(context.Background(), p.fn, inputs)
	if err != nil {
		p.tb.Fatalf("submit: %v", err)
	}
	return ids
}

// records reads the tasks' records (nil and the error while Redis is unreachable).
func (p *platform) records(ids []string) ([]store.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := make([]store.Record, 0, len(ids))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 1000)]
		ids = ids[len(chunk):]
		rs, err := p.st.Tasks(ctx, chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// tally counts records by status ("" for a missing record).
func tally(rs []store.Record) map[task.Status]int {
	m := make(map[task.Status]int)
	for _, r := range rs {
		m[r.Status]++
	}
	return m
}

func terminal(s task.Status) bool { return s == task.Completed || s == task.Failed }

// waitTerminal polls until at least n of ids are terminal, and returns their records.
func (p *platform) waitTerminal(ids []string, n int, timeout time.Duration) []store.Record {
	p.tb.Helper()
	var last []store.Record
	testutil.WaitForProgress(p.tb, timeout, fmt.Sprintf("%d of %d tasks terminal", n, len(ids)), func() (bool, string) {
		rs, err := p.records(ids)
		if err != nil {
			return false, err.Error()
		}
		last = rs
		done := 0
		for _, r := range rs {
			if terminal(r.Status) {
				done++
			}
		}
		return done >= n, fmt.Sprintf("%v", tally(rs))
	})
	return last
}

// waitAll polls until every task is terminal and returns the records.
func (p *platform) waitAll(ids []string, timeout time.Duration) []store.Record {
	p.tb.Helper()
	return p.waitTerminal(ids, len(ids), timeout)
}

// requireAllCompleted fails the test unless every record is COMPLETED with the sleep
// sample's output and between 1 and maxAttempts attempts.
func requireAllCompleted(tb testing.TB, rs []store.Record, maxAttempts int) {
	tb.Helper()
	bad := 0
	for _, r := range rs {
		ok := r.Status == task.Completed && strings.HasPrefix(string(r.Result), "slept ") &&
			r.Attempts >= 1 && r.Attempts <= maxAttempts
		if !ok {
			if bad < 5 {
				tb.Errorf("task %s: status %s, attempts %d, result %q, error %+v, worker %q",
					r.ID, r.Status, r.Attempts, r.Result, r.Error, r.Worker)
			}
			bad++
		}
	}
	if bad > 0 {
		tb.Fatalf("%d of %d tasks not COMPLETED as expected: %v", bad, len(rs), tally(rs))
	}
}

// attempts counts records by attempts.
func attempts(rs []store.Record) map[int]int {
	m := make(map[int]int)
	for _, r := range rs {
		m[r.Attempts]++
	}
	return m
}

// byWorker counts records by the worker that ran them.
func byWorker(rs []store.Record) map[string]int {
	m := make(map[string]int)
	for _, r := range rs {
		m[r.Worker]++
	}
	return m
}

// ranBy reports whether a worker name belongs to the process with pid: dispatchers are
// named "<host>-<pid>" (local workers "local:<host>-<pid>"), remote workers
// "<host>-<pid>-<random>".
func ranBy(worker string, pid int) bool {
	s := "-" + strconv.Itoa(pid)
	return strings.HasSuffix(worker, s) || strings.Contains(worker, s+"-")
}

// ---------------------------------------------------------------------------------------
// Done notifications: how many times each task was announced terminal.

type doneCounter struct {
	p *platform
	a *redistest.Announcements
}

// countDone subscribes to the store's done channel (before tasks are submitted, so that no
// announcement is missed) and counts the announcements of each id. Every applied terminal
// transition is announced once, so a task announced twice became terminal twice.
func (p *platform) countDone() *doneCounter {
	p.tb.Helper()
	return &doneCounter{p: p, a: p.redis.Count(p.tb, p.st.DoneChannel())}
}

// check fails the test unless each id was announced exactly once, and nothing else was.
func (d *doneCounter) check(tb testing.TB, ids []string) {
	tb.Helper()
	missing, twice, unknown := d.a.Once(ids, 5*time.Second)
	if len(missing) > 0 {
		if rs, err := d.p.records(first(missing, 5)); err == nil {
			for _, r := range rs {
				tb.Logf("never announced: %+v", r)
			}
		}
	}
	if len(missing)+len(twice)+len(unknown) > 0 {
		tb.Fatalf("done announcements: %d never, %d more than once %v, %d of unknown ids %v",
			len(missing), len(twice), first(twice, 5), len(unknown), first(unknown, 5))
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// ---------------------------------------------------------------------------------------
// Helpers

// isUnavailable reports whether err is the server's 503 answer.
func isUnavailable(err error) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.StatusCode == 503 && ae.Code == "unavailable"
}
