package dispatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/protocol"
	"faas/sandbox"
	"faas/store"
	"faas/task"
	"faas/worker"
)

// The one fixture every mode's tests run on: a real Redis, a store on it, a sandbox (for
// validation, and for the local mode's slots) and a free port for a pull or push dispatcher.
// Tests that hold for all three modes loop over allModes with the same fixture, as a driver
// suite runs one set of tests against every driver.

var (
	allModes    = []protocol.Mode{protocol.ModeLocal, protocol.ModePull, protocol.ModePush}
	remoteModes = []protocol.Mode{protocol.ModePull, protocol.ModePush}
)

// TestMain lets the test binary act as a remote worker process (FAAS_TEST_WORKER=
// "mode slots endpoint id") or a dispatcher process, so that tests can SIGKILL them for real.
func TestMain(m *testing.M) {
	if spec := os.Getenv("FAAS_TEST_WORKER"); spec != "" {
		os.Exit(workerProcess(spec))
	}
	if spec := os.Getenv("FAAS_TEST_DISPATCHER"); spec != "" {
		os.Exit(dispatcherProcess(spec))
	}
	// Every sandbox of the tests (dispatcher's, workers', child processes') shares one
	// on-disk compilation cache: each module compiles once per run, not once per sandbox.
	dir, err := os.MkdirTemp("", "faas-dispatch-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("FAAS_TEST_CACHE", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dispatcherProcess runs a dispatcher ("mode port redisURL") with short leases and fast
// heartbeats, until SIGTERM (or SIGKILL). A local one runs its tasks in a sandbox of its own.
func dispatcherProcess(spec string) int {
	var mode, url string
	var port int
	if _, err := fmt.Sscan(spec, &mode, &port, &url); err != nil {
		fmt.Fprintln(os.Stderr, "bad FAAS_TEST_DISPATCHER:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rdb, err := store.Open(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer rdb.Close()
	var sb *sandbox.Sandbox
	if protocol.Mode(mode) == protocol.ModeLocal {
		if sb, err = sandbox.New(ctx, sandbox.Config{CacheDir: os.Getenv("FAAS_TEST_CACHE")}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer sb.Close(context.Background())
	}
	st := store.New(rdb, store.Config{LeaseTTL: childLeaseTTL})
	cfg := Config{Mode: protocol.Mode(mode), Port: port, Workers: 2, HeartbeatInterval: fastBeat, HeartbeatTimeout: fastTimeout}
	if err := Run(ctx, st, sb, cfg, testLog()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childLeaseTTL is the lease of dispatchers run as child processes: a killed one's tasks
// are recovered within a few seconds.
const childLeaseTTL = 2 * time.Second

func workerProcess(spec string) int {
	var mode, endpoint, id string
	var slots int
	if _, err := fmt.Sscan(spec, &mode, &slots, &endpoint, &id); err != nil {
		fmt.Fprintln(os.Stderr, "bad FAAS_TEST_WORKER:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sb, err := sandbox.New(ctx, sandbox.Config{CacheDir: os.Getenv("FAAS_TEST_CACHE")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sb.Close(context.Background())
	hb, _ := time.ParseDuration(os.Getenv("FAAS_TEST_HEARTBEAT"))
	if err := worker.Run(ctx, sb, worker.Config{Mode: protocol.Mode(mode), Slots: slots, Endpoint: endpoint, ID: id, HeartbeatInterval: hb}, testLog()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// testSandbox returns a sandbox on the tests' shared compilation cache.
func testSandbox(tb testing.TB) *sandbox.Sandbox {
	tb.Helper()
	sb, err := sandbox.New(context.Background(), sandbox.Config{CacheDir: os.Getenv("FAAS_TEST_CACHE")})
	if err != nil {
		tb.Fatal(err)
	}
	return sb
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLog discards logs unless FAAS_TEST_LOG=1 (then: everything, on stderr).
func testLog() *slog.Logger {
	if os.Getenv("FAAS_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quietLog()
}

// fixture is a real Redis, a store, a sandbox and, for pull and push, a port to serve on.
type fixture struct {
	redis    *redistest.Server
	redisURL string
	st       *store.Store
	sb       *sandbox.Sandbox
	mode     protocol.Mode
	port     int
	endpoint string
	cfg      Config
}

// Heartbeat settings of the tests: a dead worker is detected within about a second.
const (
	fastBeat    = 200 * time.Millisecond
	fastTimeout = 1000 * time.Millisecond
)

// newFixture is newFixtureStore with the store's defaults.
func newFixture(tb testing.TB, mode protocol.Mode) *fixture {
	tb.Helper()
	return newFixtureStore(tb, mode, store.Config{})
}

// newFixtureStore starts a Redis of the test's own and a store on it configured by sc; the
// fixture's cfg runs a dispatcher of mode with two local slots (local mode) or on a free
// port (pull, push), fast heartbeats and a short drain.
func newFixtureStore(tb testing.TB, mode protocol.Mode, sc store.Config) *fixture {
	tb.Helper()
	srv := redistest.Start(tb)
	sb := testSandbox(tb)
	tb.Cleanup(func() { sb.Close(context.Background()) })
	port := testutil.FreePort(tb)
	return &fixture{
		redis:    srv,
		redisURL: srv.URL,
		st:       store.New(srv.Client(tb), sc),
		sb:       sb,
		mode:     mode,
		port:     port,
		endpoint: fmt.Sprintf("tcp://127.0.0.1:%d", port),
		cfg: Config{Mode: mode, Port: port, Workers: 2, HeartbeatInterval: fastBeat, HeartbeatTimeout: fastTimeout,
			DrainTimeout: 3 * time.Second},
	}
}

func (f *fixture) register(tb testing.TB, name string, wasm []byte) store.Function {
	tb.Helper()
	return f.registerLimits(tb, name, wasm, task.Limits{})
}

func (f *fixture) registerLimits(tb testing.TB, name string, wasm []byte, lim task.Limits) store.Function {
	tb.Helper()
	ctx := context.Background()
	info, err := f.sb.Validate(ctx, wasm, lim)
	if err != nil {
		tb.Fatalf("validate %s: %v", name, err)
	}
	fn := store.Function{ID: uuid.NewString(), Name: name, ModuleHash: info.Hash,
		ModuleSize: int64(len(wasm)), Limits: lim.WithDefaults(), CreatedAt: time.Now()}
	if err := f.st.PutModule(ctx, info.Hash, wasm); err != nil {
		tb.Fatal(err)
	}
	if err := f.st.CreateFunction(ctx, fn); err != nil {
		tb.Fatal(err)
	}
	return fn
}

func (f *fixture) submit(tb testing.TB, fn store.Function, inputs [][]byte) []string {
	tb.Helper()
	ids, err := f.st.Submit(context.Background(), fn, inputs)
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

// repeat is n copies of input, a batch of like tasks.
func repeat(n int, input string) [][]byte {
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = []byte(input)
	}
	return inputs
}

// start runs a dispatcher with cfg until the returned stop is called; stop returns Run's error.
func (f *fixture) start(tb testing.TB, cfg Config) (stop func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		err := Run(ctx, f.st, f.sb, cfg, testLog())
		if ctx.Err() == nil {
			tb.Errorf("dispatcher returned before it was stopped: %v", err)
		}
		errc <- err
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("dispatcher: %v", err)
		}
	})
	return stop
}

// startDispatcher runs the fixture's dispatcher until the returned stop is called.
func (f *fixture) startDispatcher(tb testing.TB) (stop func() error) {
	tb.Helper()
	return f.start(tb, f.cfg)
}

// startWorker runs an in-process worker with its own sandbox until stop is called.
func (f *fixture) startWorker(tb testing.TB, id string, slots int) (stop func()) {
	tb.Helper()
	sb := testSandbox(tb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, sb, worker.Config{Mode: f.mode, Slots: slots, Endpoint: f.endpoint, ID: id,
			HeartbeatInterval: fastBeat}, testLog())
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("worker %s: %v", id, err)
				}
			case <-time.After(10 * time.Second):
				tb.Errorf("worker %s did not stop within 10s", id)
			}
			sb.Close(context.Background())
		})
	}
	tb.Cleanup(stop)
	return stop
}

// startWorkerProcess runs a worker as a child process (the test binary), for SIGKILL.
func (f *fixture) startWorkerProcess(tb testing.TB, id string, slots int) *exec.Cmd {
	tb.Helper()
	return startChild(tb, fmt.Sprintf("FAAS_TEST_WORKER=%s %d %s %s", f.mode, slots, f.endpoint, id),
		"FAAS_TEST_HEARTBEAT="+fastBeat.String())
}

// startDispatcherProcess runs the fixture's dispatcher as a child process, for SIGKILL.
func (f *fixture) startDispatcherProcess(tb testing.TB) *exec.Cmd {
	tb.Helper()
	return startChild(tb, fmt.Sprintf("FAAS_TEST_DISPATCHER=%s %d %s", f.mode, f.port, f.redisURL))
}

// startChild runs the test binary as a child process with env added; cleanup kills it.
func startChild(tb testing.TB, env ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// records reads the tasks' records, failing the test if Redis does not answer.
func (f *fixture) records(tb testing.TB, ids []string) []store.Record {
	tb.Helper()
	recs, err := f.st.Tasks(context.Background(), ids)
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

// waitAny polls until one of the tasks' records satisfies cond (what names it).
func (f *fixture) waitAny(tb testing.TB, ids []string, what string, cond func(store.Record) bool) {
	tb.Helper()
	testutil.WaitFor(tb, 30*time.Second, what, func() bool {
		return slices.ContainsFunc(f.records(tb, ids), cond)
	})
}

// waitTerminal polls until every task is terminal, and returns their records. It asks
// only about the tasks not yet terminal, so that polling does not load Redis.
func (f *fixture) waitTerminal(tb testing.TB, ids []string, within time.Duration) []store.Record {
	tb.Helper()
	deadline := time.Now().Add(within)
	pending := slices.Clone(ids)
	for len(pending) > 0 {
		left := pending[:0]
		for _, r := range f.records(tb, pending) {
			if !r.Status.Terminal() {
				left = append(left, r.ID)
			}
		}
		pending = left
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d tasks not terminal after %v", len(pending), len(ids), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f.records(tb, ids)
}

// waitTerminalFast polls one task every millisecond until it is terminal.
func (f *fixture) waitTerminalFast(tb testing.TB, id string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := f.st.Task(context.Background(), id)
		if err != nil {
			tb.Fatal(err)
		}
		if r.Status.Terminal() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	tb.Fatalf("task %s not terminal within 10s", id)
}
