package dispatch

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"faas/internal/redistest"
	"faas/samples"
	"faas/sandbox"
	"faas/store"
	"faas/task"
)

// localFixture is a real Redis, a store on it and a sandbox.
type localFixture struct {
	redis *redistest.Server
	st    *store.Store
	sb    *sandbox.Sandbox
}

func newLocalFixture(t *testing.T, cfg store.Config) *localFixture {
	t.Helper()
	srv := redistest.Start(t)
	st := store.New(srv.Client(t), cfg)
	sb, err := sandbox.New(context.Background(), sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close(context.Background()) })
	return &localFixture{redis: srv, st: st, sb: sb}
}

func (f *localFixture) register(t *testing.T, name string, wasm []byte) store.Function {
	t.Helper()
	ctx := context.Background()
	info, err := f.sb.Validate(ctx, wasm, task.Limits{})
	if err != nil {
		t.Fatalf("validate %s: %v", name, err)
	}
	fn := store.Function{ID: uuid.NewString(), Name: name, ModuleHash: info.Hash,
		ModuleSize: int64(len(wasm)), Limits: task.DefaultLimits(), CreatedAt: time.Now()}
	if err := f.st.PutModule(ctx, info.Hash, wasm); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateFunction(ctx, fn); err != nil {
		t.Fatal(err)
	}
	return fn
}

func (f *localFixture) submit(t *testing.T, fn store.Function, inputs [][]byte) []string {
	t.Helper()
	ids, err := f.st.Submit(context.Background(), fn, inputs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// start runs a dispatcher until the returned stop is called; stop returns Run's error.
func (f *localFixture) start(t *testing.T, cfg Config) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, f.st, f.sb, cfg, quietLog()) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitTerminal polls until every task is terminal, and returns their records.
func (f *localFixture) waitTerminal(t *testing.T, ids []string, within time.Duration) []store.Record {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		recs, err := f.st.Tasks(context.Background(), ids)
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for _, r := range recs {
			if !r.Status.Terminal() {
				left++
			}
		}
		if left == 0 {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks not terminal after %v", left, len(ids), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestLocalDrainsBacklog submits 1,000 tasks while no dispatcher runs, then starts one:
// every task completes with its own right result.
func TestLocalDrainsBacklog(t *testing.T) {
	f := newLocalFixture(t, store.Config{})
	fn := f.register(t, "double", samples.DoubleWAT)
	const n = 1000
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = []byte(strconv.Itoa(i))
	}
	ids := f.submit(t, fn, inputs)
	if got, err := f.st.QueueLen(context.Background()); err != nil || got != n {
		t.Fatalf("queue holds %d (err %v) before any dispatcher, want %d", got, err, n)
	}

	stop := f.start(t, Config{Mode: "local", Workers: 2})
	recs := f.waitTerminal(t, ids, time.Minute)
	for i, r := range recs {
		if r.Status != task.Completed || string(r.Result) != strconv.Itoa(2*i) {
			t.Fatalf("task %d: %s %q %+v, want COMPLETED %q", i, r.Status, r.Result, r.Error, strconv.Itoa(2*i))
		}
		if r.Attempts != 1 {
			t.Errorf("task %d ran %d times, want 1", i, r.Attempts)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestLocalOutcomes runs good and hostile samples through local mode: each ends with the
// right output or failure kind, and the pool keeps serving.
func TestLocalOutcomes(t *testing.T) {
	f := newLocalFixture(t, store.Config{})
	cases := []struct {
		name   string
		wasm   []byte
		input  string
		status task.Status
		result string    // when COMPLETED
		kind   task.Kind // when FAILED
	}{
		{"double", samples.DoubleWAT, "21", task.Completed, "42", ""},
		{"echo", samples.Echo, "hello", task.Completed, "hello", ""},
		{"exit", samples.Hostile["exit_nonzero"], "", task.Failed, "", "exit"},
		{"unreachable", samples.Hostile["unreachable"], "", task.Failed, "", "trap"},
		{"memory_bomb", samples.Hostile["memory_bomb"], "", task.Failed, "", "out_of_memory"},
		{"huge_output", samples.Hostile["huge_output"], "", task.Failed, "", "output_too_large"},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = f.submit(t, f.register(t, c.name, c.wasm), [][]byte{[]byte(c.input)})[0]
	}
	f.start(t, Config{Mode: "local", Workers: 2})
	recs := f.waitTerminal(t, ids, time.Minute)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := recs[i]
			if r.Status != c.status {
				t.Fatalf("status %s (%+v), want %s", r.Status, r.Error, c.status)
			}
			if c.status == task.Completed && string(r.Result) != c.result {
				t.Errorf("result %q, want %q", r.Result, c.result)
			}
			if c.status == task.Failed && (r.Error == nil || r.Error.Kind != c.kind) {
				t.Errorf("error %+v, want kind %s", r.Error, c.kind)
			}
		})
	}
}

// TestLocalStopHandsBack stops a dispatcher while it holds sleeping tasks: it returns
// within the drain timeout, and a second dispatcher completes every task, none twice.
func TestLocalStopHandsBack(t *testing.T) {
	f := newLocalFixture(t, store.Config{})
	fn := f.register(t, "sleep", samples.Sleep)
	inputs := make([][]byte, 20)
	for i := range inputs {
		inputs[i] = []byte("300")
	}
	ids := f.submit(t, fn, inputs)

	stop := f.start(t, Config{Mode: "local", Workers: 2, DrainTimeout: 2 * time.Second})
	// Wait until some have started, then stop.
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err := f.st.Tasks(context.Background(), ids)
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, r := range recs {
			if r.Status == task.Running || r.Status.Terminal() {
				running++
			}
		}
		if running > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no task started within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t0 := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("stop took %v, want within the 2s drain timeout plus writing", took)
	}
	if n, err := f.st.LeaseCount(context.Background()); err != nil || n != 0 {
		t.Errorf("%d leases held after a clean stop (err %v), want 0", n, err)
	}

	f.start(t, Config{Mode: "local", Workers: 4})
	for i, r := range f.waitTerminal(t, ids, time.Minute) {
		if r.Status != task.Completed {
			t.Errorf("task %d: %s %+v, want COMPLETED", i, r.Status, r.Error)
		}
		if r.Attempts != 1 {
			t.Errorf("task %d: attempts %d, want 1 (a hand-back is not an attempt)", i, r.Attempts)
		}
	}
}
