package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	zmq "github.com/pebbe/zmq4"

	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/internal/zsock"
	"faas/protocol"
	"faas/samples"
	"faas/sandbox"
	"faas/store"
	"faas/task"
	"faas/worker"
)

// TestMain lets the test binary act as a remote worker process (FAAS_TEST_WORKER=
// "mode slots endpoint id"), so that tests can SIGKILL a worker for real.
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

// dispatcherProcess runs a pull or push dispatcher ("mode port redisURL") with short leases
// and fast heartbeats, until SIGTERM (or SIGKILL).
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
	st := store.New(rdb, store.Config{LeaseTTL: childLeaseTTL})
	cfg := Config{Mode: protocol.Mode(mode), Port: port, HeartbeatInterval: fastBeat, HeartbeatTimeout: fastTimeout}
	if err := Run(ctx, st, nil, cfg, testLog()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childLeaseTTL is the lease of dispatchers run as child processes: a killed one's tasks
// are recovered within a few seconds.
const childLeaseTTL = 2 * time.Second

// testSandbox returns a sandbox on the tests' shared compilation cache.
func testSandbox(tb testing.TB) *sandbox.Sandbox {
	tb.Helper()
	sb, err := sandbox.New(context.Background(), sandbox.Config{CacheDir: os.Getenv("FAAS_TEST_CACHE")})
	if err != nil {
		tb.Fatal(err)
	}
	return sb
}

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

// testLog discards logs unless FAAS_TEST_LOG=1 (then: everything, on stderr).
func testLog() *slog.Logger {
	if os.Getenv("FAAS_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quietLog()
}

// remoteFixture is a real Redis, a store, a sandbox (for validation, and for local mode)
// and a free port for a pull or push dispatcher.
type remoteFixture struct {
	redis    *redistest.Server
	redisURL string
	st       *store.Store
	sb       *sandbox.Sandbox
	mode     string
	port     int
	endpoint string
	cfg      Config
}

// Heartbeat settings of the tests: a dead worker is detected within about a second.
const (
	fastBeat    = 200 * time.Millisecond
	fastTimeout = 1000 * time.Millisecond
)

func newRemoteFixture(tb testing.TB, mode string) *remoteFixture {
	tb.Helper()
	srv := redistest.Start(tb)
	sb := testSandbox(tb)
	tb.Cleanup(func() { sb.Close(context.Background()) })
	port := testutil.FreePort(tb)
	return &remoteFixture{
		redis:    srv,
		redisURL: srv.URL,
		st:       store.New(srv.Client(tb), store.Config{}),
		sb:       sb,
		mode:     mode,
		port:     port,
		endpoint: fmt.Sprintf("tcp://127.0.0.1:%d", port),
		cfg: Config{Mode: protocol.Mode(mode), Port: port, Workers: 2, HeartbeatInterval: fastBeat, HeartbeatTimeout: fastTimeout,
			DrainTimeout: 3 * time.Second},
	}
}

func (f *remoteFixture) register(tb testing.TB, name string, wasm []byte) store.Function {
	tb.Helper()
	return f.registerLimits(tb, name, wasm, task.Limits{})
}

func (f *remoteFixture) submit(tb testing.TB, fn store.Function, inputs [][]byte) []string {
	tb.Helper()
	ids, err := f.st.Submit(context.Background(), fn, inputs)
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

// start runs a dispatcher with cfg until the returned stop is called; stop returns Run's error.
func (f *remoteFixture) start(tb testing.TB, cfg Config) (stop func() error) {
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

// waitTerminal polls until every task is terminal, and returns their records. It asks
// only about the tasks not yet terminal, so that polling does not load Redis.
func (f *remoteFixture) waitTerminal(tb testing.TB, ids []string, within time.Duration) []store.Record {
	tb.Helper()
	deadline := time.Now().Add(within)
	pending := slices.Clone(ids)
	for len(pending) > 0 {
		recs, err := f.st.Tasks(context.Background(), pending)
		if err != nil {
			tb.Fatal(err)
		}
		left := pending[:0]
		for _, r := range recs {
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
	recs, err := f.st.Tasks(context.Background(), ids)
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

// startDispatcher runs the fixture's dispatcher until the returned stop is called.
func (f *remoteFixture) startDispatcher(t testing.TB) (stop func() error) {
	t.Helper()
	return f.start(t, f.cfg)
}

// startWorker runs an in-process worker with its own sandbox until stop is called.
func (f *remoteFixture) startWorker(t testing.TB, id string, slots int) (stop func()) {
	t.Helper()
	sb := testSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, sb, worker.Config{Mode: protocol.Mode(f.mode), Slots: slots, Endpoint: f.endpoint, ID: id,
			HeartbeatInterval: fastBeat}, testLog())
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("worker %s: %v", id, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("worker %s did not stop within 10s", id)
			}
			sb.Close(context.Background())
		})
	}
	t.Cleanup(stop)
	return stop
}

// startWorkerProcess runs a worker as a child process (the test binary), for SIGKILL.
func (f *remoteFixture) startWorkerProcess(t *testing.T, id string, slots int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("FAAS_TEST_WORKER=%s %d %s %s", f.mode, slots, f.endpoint, id),
		"FAAS_TEST_HEARTBEAT="+fastBeat.String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// startDispatcherProcess runs the fixture's dispatcher as a child process, for SIGKILL.
func (f *remoteFixture) startDispatcherProcess(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("FAAS_TEST_DISPATCHER=%s %d %s", f.mode, f.port, f.redisURL))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func (f *remoteFixture) registerLimits(t testing.TB, name string, wasm []byte, lim task.Limits) store.Function {
	t.Helper()
	ctx := context.Background()
	info, err := f.sb.Validate(ctx, wasm, lim)
	if err != nil {
		t.Fatalf("validate %s: %v", name, err)
	}
	fn := store.Function{ID: uuid.NewString(), Name: name, ModuleHash: info.Hash,
		ModuleSize: int64(len(wasm)), Limits: lim.WithDefaults(), CreatedAt: time.Now()}
	if err := f.st.PutModule(ctx, info.Hash, wasm); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateFunction(ctx, fn); err != nil {
		t.Fatal(err)
	}
	return fn
}

// maxConcurrent is the most tasks of recs that overlapped in time, each taken to run from
// its start (claim time, which in pull and push mode is when a slot asked or was free)
// for its sandbox duration. tolerance absorbs the records' millisecond rounding.
func maxConcurrent(recs []store.Record, tolerance time.Duration) int {
	type edge struct {
		at time.Time
		d  int
	}
	var edges []edge
	for _, r := range recs {
		start := r.StartedAt
		end := start.Add(time.Duration(r.DurationMs)*time.Millisecond - tolerance)
		if !end.After(start) {
			continue
		}
		edges = append(edges, edge{start, +1}, edge{end, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.d - b.d // ends before starts at the same instant
	})
	cur, most := 0, 0
	for _, e := range edges {
		cur += e.d
		most = max(most, cur)
	}
	return most
}

func byWorker(recs []store.Record) map[string][]store.Record {
	m := make(map[string][]store.Record)
	for _, r := range recs {
		m[r.Worker] = append(m[r.Worker], r)
	}
	return m
}

// mixedTasks submits n tasks cycling through several samples and returns their ids and
// the result each must have.
func (f *remoteFixture) mixedTasks(t *testing.T, n int) (ids []string, want []string) {
	t.Helper()
	fns := []struct {
		fn    store.Function
		input func(i int) string
		want  func(i int) string
	}{
		{f.register(t, "double_wat", samples.DoubleWAT), strconv.Itoa, func(i int) string { return strconv.Itoa(2 * i) }},
		{f.register(t, "double_c", samples.DoubleC), strconv.Itoa, func(i int) string { return strconv.Itoa(2 * i) }},
		{f.register(t, "echo", samples.Echo), func(i int) string { return fmt.Sprintf("echo\x00%d\n", i) }, func(i int) string { return fmt.Sprintf("echo\x00%d\n", i) }},
		{f.register(t, "fib", samples.Fib), func(i int) string { return strconv.Itoa(i % 20) }, func(i int) string { return strconv.Itoa(fib(i % 20)) }},
	}
	inputs := make([][][]byte, len(fns))
	idx := make([][]int, len(fns))
	for i := range n {
		k := i % len(fns)
		inputs[k] = append(inputs[k], []byte(fns[k].input(i)))
		idx[k] = append(idx[k], i)
	}
	ids, want = make([]string, n), make([]string, n)
	for k, fn := range fns {
		got := f.submit(t, fn.fn, inputs[k])
		for j, id := range got {
			ids[idx[k][j]] = id
			want[idx[k][j]] = fn.want(idx[k][j])
		}
	}
	return ids, want
}

func fib(n int) int {
	a, b := 0, 1
	for range n {
		a, b = b, a+b
	}
	return a
}

func checkResults(t *testing.T, recs []store.Record, want []string, workers ...string) {
	t.Helper()
	for i, r := range recs {
		if r.Status != task.Completed || string(r.Result) != want[i] {
			t.Fatalf("task %d: %s %q %+v, want COMPLETED %q", i, r.Status, r.Result, r.Error, want[i])
		}
		if len(workers) > 0 && !slices.Contains(workers, r.Worker) {
			t.Fatalf("task %d ran on %q, want one of %v", i, r.Worker, workers)
		}
	}
}

var remoteModes = []string{"pull", "push"}

// TestRemoteMixed: 1,000 tasks of mixed samples through a dispatcher and two workers, all
// with the right results, each recorded with the worker that ran it; both workers served.
func TestRemoteMixed(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			f := newRemoteFixture(t, mode)
			f.startDispatcher(t)
			f.startWorker(t, "w1", 4)
			f.startWorker(t, "w2", 4)
			ids, want := f.mixedTasks(t, 1000)
			recs := f.waitTerminal(t, ids, time.Minute)
			checkResults(t, recs, want, "w1", "w2")
			per := byWorker(recs)
			if len(per["w1"]) == 0 || len(per["w2"]) == 0 {
				t.Errorf("split w1=%d w2=%d: one worker did nothing", len(per["w1"]), len(per["w2"]))
			}
			t.Logf("split: w1=%d w2=%d", len(per["w1"]), len(per["w2"]))
		})
	}
}

// TestPullSlotLimit: a pull worker with one slot never runs two tasks at once, while a
// worker with three slots beside it does run several.
func TestPullSlotLimit(t *testing.T) {
	f := newRemoteFixture(t, "pull")
	fn := f.register(t, "sleep", samples.Sleep)
	f.startDispatcher(t)
	f.startWorker(t, "one", 1)
	f.startWorker(t, "three", 3)
	inputs := make([][]byte, 40)
	for i := range inputs {
		inputs[i] = []byte("60")
	}
	recs := f.waitTerminal(t, f.submit(t, fn, inputs), time.Minute)
	per := byWorker(recs)
	for _, r := range recs {
		if r.Status != task.Completed {
			t.Fatalf("task %s: %s %+v", r.ID, r.Status, r.Error)
		}
	}
	if got := maxConcurrent(per["one"], 2*time.Millisecond); got != 1 {
		t.Errorf("worker with 1 slot ran %d tasks at once (%d tasks)", got, len(per["one"]))
	}
	if got := maxConcurrent(per["three"], 2*time.Millisecond); got > 3 || got < 2 {
		t.Errorf("worker with 3 slots ran at most %d at once, want 2..3", got)
	}
	t.Logf("split: one=%d three=%d", len(per["one"]), len(per["three"]))
}

// TestPushCapacitySplit: push workers of capacity 1 and 3 share sleep tasks close to 1:3,
// and neither ever runs more than its capacity.
func TestPushCapacitySplit(t *testing.T) {
	f := newRemoteFixture(t, "push")
	fn := f.register(t, "sleep", samples.Sleep)
	f.startDispatcher(t)
	f.startWorker(t, "cap1", 1)
	f.startWorker(t, "cap3", 3)
	// Both registered before any task exists, so the split measures the scheduler.
	time.Sleep(3 * fastBeat)
	inputs := make([][]byte, 80)
	for i := range inputs {
		inputs[i] = []byte("50")
	}
	recs := f.waitTerminal(t, f.submit(t, fn, inputs), time.Minute)
	per := byWorker(recs)
	for _, r := range recs {
		if r.Status != task.Completed {
			t.Fatalf("task %s: %s %+v", r.ID, r.Status, r.Error)
		}
	}
	c1, c3 := maxConcurrent(per["cap1"], 2*time.Millisecond), maxConcurrent(per["cap3"], 2*time.Millisecond)
	if c1 > 1 || c3 > 3 {
		t.Errorf("ran at once: cap1=%d cap3=%d; capacities are 1 and 3", c1, c3)
	}
	n1, n3 := len(per["cap1"]), len(per["cap3"])
	share := float64(n1) / float64(n1+n3)
	if share < 0.15 || share > 0.35 {
		t.Errorf("split cap1=%d cap3=%d (share %.2f), want close to 1:3", n1, n3, share)
	}
	t.Logf("split cap1=%d cap3=%d, at once cap1=%d cap3=%d", n1, n3, c1, c3)
}

// TestRemoteWorkerLost: one of two workers (a child process) dies mid-run, by SIGKILL or
// by SIGSTOP (alive but silent); the dispatcher notices its missing heartbeats and its
// tasks run again on the other worker: every task COMPLETED.
func TestRemoteWorkerLost(t *testing.T) {
	for _, mode := range remoteModes {
		for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP} {
			t.Run(mode+"/"+sig.String(), func(t *testing.T) {
				f := newRemoteFixture(t, mode)
				fn := f.register(t, "sleep", samples.Sleep)
				f.startDispatcher(t)
				f.startWorker(t, "stays", 2)
				victim := f.startWorkerProcess(t, "dies", 2)
				inputs := make([][]byte, 60)
				for i := range inputs {
					inputs[i] = []byte("100")
				}
				ids := f.submit(t, fn, inputs)
				testutil.WaitFor(t, 30*time.Second, "the victim to complete a task", func() bool {
					recs, err := f.st.Tasks(context.Background(), ids)
					if err != nil {
						t.Fatal(err)
					}
					return slices.ContainsFunc(recs, func(r store.Record) bool { return r.Worker == "dies" })
				})
				victim.Process.Signal(sig)
				if sig == syscall.SIGSTOP {
					t.Cleanup(func() { victim.Process.Signal(syscall.SIGCONT) })
				}
				recs := f.waitTerminal(t, ids, time.Minute)
				reruns := 0
				for _, r := range recs {
					if r.Status != task.Completed {
						t.Fatalf("task %s: %s %+v after %d attempts", r.ID, r.Status, r.Error, r.Attempts)
					}
					if r.Attempts > 1 {
						reruns++
						if r.Worker != "stays" {
							t.Errorf("task %s re-run on %q, want the surviving worker", r.ID, r.Worker)
						}
					}
				}
				if reruns == 0 {
					t.Errorf("no task was re-run: the victim held nothing when it died?")
				}
				t.Logf("%d tasks re-run after the victim died", reruns)
			})
		}
	}
}

// TestRemoteDispatcherRestart: the dispatcher stops mid-run and another starts on the same
// port; the workers register again by themselves and every task completes, including those
// submitted while no dispatcher ran.
func TestRemoteDispatcherRestart(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			f := newRemoteFixture(t, mode)
			fn := f.register(t, "sleep", samples.Sleep)
			stop := f.startDispatcher(t)
			f.startWorker(t, "w1", 2)
			f.startWorker(t, "w2", 2)
			inputs := make([][]byte, 40)
			for i := range inputs {
				inputs[i] = []byte("50")
			}
			ids := f.submit(t, fn, inputs)
			testutil.WaitFor(t, 30*time.Second, "some tasks to complete", func() bool {
				recs, err := f.st.Tasks(context.Background(), ids)
				if err != nil {
					t.Fatal(err)
				}
				return slices.ContainsFunc(recs, func(r store.Record) bool { return r.Status == task.Completed })
			})
			if err := stop(); err != nil {
				t.Fatalf("first dispatcher: %v", err)
			}
			ids = append(ids, f.submit(t, fn, inputs)...) // queued while no dispatcher runs
			f.startDispatcher(t)
			recs := f.waitTerminal(t, ids, time.Minute)
			for _, r := range recs {
				if r.Status != task.Completed {
					t.Fatalf("task %s: %s %+v", r.ID, r.Status, r.Error)
				}
			}
			per := byWorker(recs[40:])
			if len(per["w1"])+len(per["w2"]) != 40 {
				t.Errorf("tasks after the restart ran on %v", slices.Collect(maps.Keys(per)))
			}
		})
	}
}

// TestRemoteDispatcherKilled: the dispatcher (a child process) is SIGKILLed mid-run and
// another starts on the same port: the workers register again by themselves, results of
// tasks they were running are recorded or fenced off, the dead dispatcher's leases expire
// and its tasks run again; every task ends COMPLETED exactly once.
func TestRemoteDispatcherKilled(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			f := newRemoteFixture(t, mode)
			fn := f.register(t, "sleep", samples.Sleep)
			first := f.startDispatcherProcess(t)
			f.startWorker(t, "w1", 2)
			f.startWorker(t, "w2", 2)
			inputs := make([][]byte, 60)
			for i := range inputs {
				inputs[i] = []byte("100")
			}
			ids := f.submit(t, fn, inputs)
			testutil.WaitFor(t, 30*time.Second, "some tasks to complete", func() bool {
				recs, err := f.st.Tasks(context.Background(), ids)
				if err != nil {
					t.Fatal(err)
				}
				return slices.ContainsFunc(recs, func(r store.Record) bool { return r.Status == task.Completed })
			})
			first.Process.Kill()
			first.Wait()
			f.startDispatcherProcess(t)
			recs := f.waitTerminal(t, ids, time.Minute)
			again := 0
			for _, r := range recs {
				if r.Status != task.Completed {
					t.Fatalf("task %s: %s %+v", r.ID, r.Status, r.Error)
				}
				if r.Attempts > 1 {
					again++
				}
			}
			t.Logf("%d tasks ran again after the dispatcher died", again)
		})
	}
}

// TestRemoteBadMessages: the dispatcher answers malformed, wrong-version and unknown-worker
// messages with an ERROR of the right code, and keeps serving.
func TestRemoteBadMessages(t *testing.T) {
	f := newRemoteFixture(t, "push")
	f.startDispatcher(t)
	d, err := zmq.NewSocket(zmq.DEALER)
	if err != nil {
		t.Fatal(err)
	}
	d.SetLinger(0)
	defer d.Close()
	if err := d.Connect(f.endpoint); err != nil {
		t.Fatal(err)
	}
	d.SetRcvtimeo(5 * time.Second)
	cases := []struct {
		name string
		body [][]byte
		code string
	}{
		{"no type", [][]byte{{protocol.Version}}, protocol.CodeMalformed},
		{"unknown type", [][]byte{{protocol.Version}, {99}}, protocol.CodeMalformed},
		{"other version", [][]byte{{protocol.Version + 1}, {byte(protocol.TypeHeartbeat)}, []byte("w")}, protocol.CodeBadVersion},
		{"short registration", [][]byte{{protocol.Version}, {byte(protocol.TypeRegistration)}, []byte("w")}, protocol.CodeMalformed},
		{"unknown worker", protocol.Encode(protocol.Heartbeat{Sender: "stranger"}), protocol.CodeUnknownWorker},
		{"wrong mode", protocol.Encode(protocol.Registration{Worker: "w", Mode: "pull", Capacity: 1}), protocol.CodeMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := zsock.Send(d, 0, protocol.Delimiter, c.body); err != nil {
				t.Fatal(err)
			}
			frames, err := d.RecvMessageBytes(0)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			m, err := protocol.Decode(frames[1:])
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := m.(protocol.Error); !ok || e.Code != c.code {
				t.Fatalf("answer %#v, want ERROR %s", m, c.code)
			}
		})
	}
	// Still serving: a registration is acknowledged.
	if err := zsock.Send(d, 0, protocol.Delimiter, protocol.Encode(protocol.Registration{Worker: "w", Mode: "push", Capacity: 1})); err != nil {
		t.Fatal(err)
	}
	frames, err := d.RecvMessageBytes(0)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := protocol.Decode(frames[1:]); err != nil || m.Type() != protocol.TypeAck {
		t.Fatalf("answer %v %v, want ACK", m, err)
	}
}

// TestRemoteWorkerStops: a worker stopped gracefully mid-run says BYE, finishes what it
// runs and returns quickly; nothing is lost and no attempt is charged.
func TestRemoteWorkerStops(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			f := newRemoteFixture(t, mode)
			fn := f.register(t, "sleep", samples.Sleep)
			f.startDispatcher(t)
			stop := f.startWorker(t, "leaves", 2)
			f.startWorker(t, "stays", 2)
			inputs := make([][]byte, 30)
			for i := range inputs {
				inputs[i] = []byte("150")
			}
			ids := f.submit(t, fn, inputs)
			testutil.WaitFor(t, 30*time.Second, "the leaving worker to complete a task", func() bool {
				recs, err := f.st.Tasks(context.Background(), ids)
				if err != nil {
					t.Fatal(err)
				}
				return slices.ContainsFunc(recs, func(r store.Record) bool { return r.Worker == "leaves" })
			})
			start := time.Now()
			stop()
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("worker took %v to stop with 150ms tasks", d)
			}
			recs := f.waitTerminal(t, ids, time.Minute)
			for _, r := range recs {
				if r.Status != task.Completed || r.Attempts != 1 {
					t.Fatalf("task %s: %s %+v after %d attempts; want COMPLETED at the first", r.ID, r.Status, r.Error, r.Attempts)
				}
			}
		})
	}
}

// TestRemoteDispatcherStopsWithTaskRunning: a dispatcher stopped (SIGTERM) while a worker
// runs a task longer than the drain hands that task back uncharged (PROTOCOL.md, Shutdown).
// The worker, told BYE, keeps asking to register again: that is being heard from, not a
// silent worker, so it must not be declared lost (which charged an attempt) during the drain.
func TestRemoteDispatcherStopsWithTaskRunning(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			f := newRemoteFixture(t, mode)
			fn := f.registerLimits(t, "sleep", samples.Sleep, task.Limits{TimeoutMs: 60_000})
			stop := f.startDispatcher(t)
			f.startWorker(t, "w1", 1)
			id := f.submit(t, fn, [][]byte{[]byte("20000")})[0]
			testutil.WaitFor(t, 30*time.Second, "the task to run", func() bool {
				recs, err := f.st.Tasks(context.Background(), []string{id})
				if err != nil {
					t.Fatal(err)
				}
				return recs[0].Status == task.Running
			})
			start := time.Now()
			if err := stop(); err != nil {
				t.Fatalf("dispatcher: %v", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("dispatcher took %v to stop", d)
			}
			recs, err := f.st.Tasks(context.Background(), []string{id})
			if err != nil {
				t.Fatal(err)
			}
			if r := recs[0]; r.Status != task.Queued || r.Attempts != 0 {
				t.Errorf("task after the dispatcher stopped: %s, %d attempts charged; want QUEUED with none", r.Status, r.Attempts)
			}
		})
	}
}

// TestRemoteIdle: with nothing to do, a dispatcher and two workers use almost no CPU (no
// polling loop spins), and a task submitted to the idle system completes within
// milliseconds (the held request or the free slot is served on the "tasks" wake-up).
func TestRemoteIdle(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			f := newRemoteFixture(t, mode)
			fn := f.register(t, "noop", samples.Noop)
			f.startDispatcher(t)
			f.startWorker(t, "w1", 4)
			f.startWorker(t, "w2", 4)
			f.waitTerminal(t, f.submit(t, fn, make([][]byte, 8)), 30*time.Second) // warm: registered, module loaded

			before := cpuTime(t)
			time.Sleep(time.Second)
			if used := cpuTime(t) - before; used > 150*time.Millisecond {
				t.Errorf("idle second used %v of CPU", used)
			} else {
				t.Logf("idle second used %v of CPU", used)
			}

			var worst time.Duration
			for range 5 {
				start := time.Now()
				f.waitTerminalFast(t, f.submit(t, fn, [][]byte{nil})[0])
				worst = max(worst, time.Since(start))
				time.Sleep(100 * time.Millisecond)
			}
			if worst > 250*time.Millisecond {
				t.Errorf("an idle system took %v to run a task", worst)
			}
			t.Logf("slowest of 5 idle pick-ups: %v", worst)
		})
	}
}

// cpuTime is the CPU (user+system) this process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// waitTerminalFast polls one task every millisecond until it is terminal.
func (f *remoteFixture) waitTerminalFast(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := f.st.Task(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.Terminal() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("task %s not terminal within 10s", id)
}

// TestRemoteRedisPause: Redis stops answering for two seconds mid-run (SIGSTOP); the
// dispatcher's socket loop keeps heartbeats going (no worker is declared lost), claims and
// writes retry, and when Redis is back every task completes, each exactly once.
func TestRemoteRedisPause(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			f := newRemoteFixture(t, mode)
			fn := f.register(t, "sleep", samples.Sleep)
			f.startDispatcher(t)
			f.startWorker(t, "w1", 3)
			f.startWorker(t, "w2", 3)
			inputs := make([][]byte, 90)
			for i := range inputs {
				inputs[i] = []byte("40")
			}
			ids := f.submit(t, fn, inputs)
			testutil.WaitFor(t, 30*time.Second, "some tasks to complete", func() bool {
				recs, err := f.st.Tasks(context.Background(), ids)
				if err != nil {
					t.Fatal(err)
				}
				return slices.ContainsFunc(recs, func(r store.Record) bool { return r.Status == task.Completed })
			})
			f.redis.Pause()
			time.Sleep(2 * time.Second)
			f.redis.Resume()
			recs := f.waitTerminal(t, ids, time.Minute)
			for _, r := range recs {
				if r.Status != task.Completed || r.Attempts != 1 {
					t.Fatalf("task %s: %s %+v after %d attempts; want COMPLETED at the first", r.ID, r.Status, r.Error, r.Attempts)
				}
			}
		})
	}
}
