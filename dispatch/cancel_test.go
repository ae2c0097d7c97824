package dispatch

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"faas/internal/metrics/metricstest"
	"faas/protocol"
	"faas/samples"
	"faas/store"
	"faas/task"
)

// cancelSetup runs a dispatcher of mode with one slot (one in-process slot, or one worker
// of one slot) and registers a 10 s sleep and noop.
func cancelSetup(tb testing.TB, mode protocol.Mode, reg *prometheus.Registry) (f *fixture, sleepFn, quick store.Function) {
	f = newFixture(tb, mode)
	sleepFn = f.registerLimits(tb, "sleep", samples.Sleep, task.Limits{TimeoutMs: 30_000})
	quick = f.register(tb, "noop", samples.Noop)
	f.cfg.Workers = 1
	f.cfg.Metrics = reg
	f.startDispatcher(tb)
	if mode.Remote() {
		f.startWorker(tb, "w1", 1)
	}
	// Warm up: the modules compiled and fetched, so that the cancel is all that is measured.
	f.waitTerminal(tb, f.submit(tb, sleepFn, [][]byte{[]byte("1")}), time.Minute)
	f.waitTerminal(tb, f.submit(tb, quick, [][]byte{nil}), time.Minute)
	return f, sleepFn, quick
}

// cancelRunning starts a 10 s sleep in the only slot, queues a noop behind it, cancels the
// sleep and returns the sleep's id, the noop's id, the time from the cancel to the slot
// freed (the dispatcher counting the cancelled run's end: local mode when the sandbox
// returned, pull and push when the worker's report arrived; measured only when reg is not
// nil) and the time to the noop's end (the noop still has to be claimed, sent and run).
func cancelRunning(tb testing.TB, f *fixture, reg prometheus.Gatherer, sleepFn, quick store.Function) (sleepID, nextID string, freed, next time.Duration) {
	tb.Helper()
	ctx := context.Background()
	sleepID = f.submit(tb, sleepFn, [][]byte{[]byte("10000")})[0]
	f.waitAny(tb, []string{sleepID}, "the sleep running", func(r store.Record) bool { return r.Status == task.Running })
	nextID = f.submit(tb, quick, [][]byte{nil})[0]
	// The noop waits (in the queue, or claimed ahead by local mode's prefetch): the only
	// slot is taken.
	time.Sleep(20 * time.Millisecond)
	if r := f.records(tb, []string{nextID})[0]; r.Status.Terminal() {
		tb.Fatalf("the noop is %s while the only slot sleeps", r.Status)
	}
	before := cancelledCount(tb, reg)
	start := time.Now()
	got, err := f.st.Cancel(ctx, store.DefaultNamespace, []string{sleepID})
	if err != nil || len(got) != 1 || got[0].Was != task.Running {
		tb.Fatalf("Cancel = %+v, %v; want it was RUNNING", got, err)
	}
	if reg != nil {
		for deadline := start.Add(10 * time.Second); cancelledCount(tb, reg) == before; {
			if time.Now().After(deadline) {
				tb.Fatal("the dispatcher did not count the cancelled run within 10s")
			}
			time.Sleep(100 * time.Microsecond)
		}
		freed = time.Since(start)
	}
	f.waitTerminalFast(tb, nextID)
	return sleepID, nextID, freed, time.Since(start)
}

// cancelledCount is the dispatcher's count of cancelled runs (0 without a registry).
func cancelledCount(tb testing.TB, reg prometheus.Gatherer) float64 {
	if reg == nil {
		return 0
	}
	v, _ := metricstest.Gather(tb, reg).Value("faas_dispatch_tasks_finished_total", "status", "FAILED", "kind", "cancelled")
	return v
}

// TestCancelRunning: in each mode, cancelling a RUNNING 10 s sleep frees its only slot (the
// task queued behind it runs long before the sleep would have ended), the sleep ends FAILED
// cancelled exactly once (the interrupted attempt's outcome overwrites nothing), and the
// dispatcher's metrics count it once, as cancelled. The time it takes is measured by
// BenchmarkCancelFreesSlot, not asserted here beyond a generous bound.
func TestCancelRunning(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			f, sleepFn, quick := cancelSetup(t, mode, reg)
			sleepID, nextID, _, next := cancelRunning(t, f, reg, sleepFn, quick)
			if next > 5*time.Second {
				t.Errorf("the next task ended %v after the cancel: the slot was not freed", next)
			}
			// Let any late report of the interrupted attempt land before reading.
			time.Sleep(300 * time.Millisecond)
			recs := f.records(t, []string{sleepID, nextID})
			r := recs[0]
			if r.Status != task.Failed || r.Error == nil || r.Error.Kind != task.KindCancelled ||
				r.Error.Message != "cancelled while RUNNING" || r.Result != nil || r.Attempts != 1 {
				t.Errorf("cancelled sleep: %s %+v result %q attempts %d; want FAILED cancelled by the store, once",
					r.Status, r.Error, r.Result, r.Attempts)
			}
			if recs[1].Status != task.Completed {
				t.Errorf("the next task: %s", recs[1].Status)
			}
			metricstest.Gather(t, reg).Want(t, map[string]float64{
				`faas_dispatch_tasks_finished_total{status="FAILED",kind="cancelled"}`: 1,
				`faas_dispatch_tasks_finished_total{status="COMPLETED",kind=""}`:       3, // warm-up sleep and noop, the next
				`faas_dispatch_tasks_released_total`:                                   0,
				`faas_dispatch_tasks_lost_total`:                                       0,
			})
		})
	}
}

// BenchmarkCancelFreesSlot measures, per mode, cancelling a RUNNING 10 s sleep in the only
// slot: the time to the slot freed (freed-*: the dispatcher counting the cancelled run's end)
// and to the end of the noop queued behind it (next-*: a claim, a send and a noop run more).
// docs/BENCHMARKS.md has the figures.
func BenchmarkCancelFreesSlot(b *testing.B) {
	for _, mode := range allModes {
		b.Run(string(mode), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			f, sleepFn, quick := cancelSetup(b, mode, reg)
			var freed, next []time.Duration
			for b.Loop() {
				_, _, fr, nx := cancelRunning(b, f, reg, sleepFn, quick)
				freed, next = append(freed, fr), append(next, nx)
			}
			for _, m := range []struct {
				name string
				d    []time.Duration
			}{{"freed", freed}, {"next", next}} {
				slices.Sort(m.d)
				at := func(q float64) float64 {
					return float64(m.d[min(len(m.d)-1, int(q*float64(len(m.d))))].Microseconds()) / 1000
				}
				b.ReportMetric(at(0.5), m.name+"-p50-ms")
				b.ReportMetric(at(0.99), m.name+"-p99-ms")
				b.ReportMetric(at(1), m.name+"-max-ms")
			}
		})
	}
}

// TestCancelMessageLost: a cancel whose message never reached the dispatcher (written
// straight into the record here, as if the subscription was down) still frees the slot:
// the next lease renewal finds the task no longer RUNNING and stops it.
func TestCancelMessageLost(t *testing.T) {
	for _, mode := range []protocol.Mode{protocol.ModeLocal, protocol.ModePush} {
		t.Run(string(mode), func(t *testing.T) {
			f := newFixtureStore(t, mode, store.Config{LeaseTTL: 400 * time.Millisecond})
			sleepFn := f.registerLimits(t, "sleep", samples.Sleep, task.Limits{TimeoutMs: 30_000})
			quick := f.register(t, "noop", samples.Noop)
			f.cfg.Workers = 1
			f.startDispatcher(t)
			if mode.Remote() {
				f.startWorker(t, "w1", 1)
			}
			id := f.submit(t, sleepFn, [][]byte{[]byte("10000")})[0]
			f.waitAny(t, []string{id}, "the sleep running", func(r store.Record) bool { return r.Status == task.Running })
			next := f.submit(t, quick, [][]byte{nil})[0]
			start := time.Now()
			if err := f.redis.Client(t).HSet(context.Background(), "faas:task:"+id,
				"status", "FAILED", "err_kind", "cancelled", "err_msg", "cancelled while RUNNING").Err(); err != nil {
				t.Fatal(err)
			}
			f.waitTerminalFast(t, next)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the next task ended %v after the silent cancel", d)
			} else {
				t.Logf("slot freed by lease renewal within %v (renewal every %v)", d, 100*time.Millisecond)
			}
			if r := f.records(t, []string{id})[0]; r.Error == nil || r.Error.Kind != task.KindCancelled {
				t.Errorf("the cancelled record was overwritten: %s %+v", r.Status, r.Error)
			}
		})
	}
}

// TestCancelDropsReadyTasks: a cancelled task the hub claimed but has not sent to any worker
// yet is never sent: it leaves the ready list, reported cancelled (the store's no-op, which
// ends the dispatcher's hold on it), and the others stay in order.
func TestCancelDropsReadyTasks(t *testing.T) {
	m, err := newDispatchMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c := newCore(nil, Config{Mode: protocol.ModePush}.withDefaults(), quietLog(), m)
	h := &hub{c: c, log: quietLog(), workers: map[string]*remoteWorker{}}
	h.keepReady([]task.Task{{ID: "a", Attempt: 1}, {ID: "b", Attempt: 1}, {ID: "c", Attempt: 2}, {ID: "d", Attempt: 1}})
	h.cancelRemote([]task.Ref{{ID: "b", Attempt: 1}, {ID: "c", Attempt: 1}, {ID: "d", Attempt: 1}, {ID: "x", Attempt: 1}})
	var left []string
	for _, tk := range h.ready {
		left = append(left, tk.ID)
	}
	if strings.Join(left, " ") != "a c" { // c is cancelled at another attempt
		t.Fatalf("ready after the cancel: %v; want a c", left)
	}
	var reported []string
	for len(c.ops) > 0 {
		o := <-c.ops
		if o.kind != opFinish || o.outcome.Failure == nil || o.outcome.Failure.Kind != task.KindCancelled {
			t.Fatalf("op %+v; want a cancelled outcome", o)
		}
		reported = append(reported, o.outcome.ID)
	}
	if strings.Join(reported, " ") != "b d" {
		t.Fatalf("reported %v; want b d", reported)
	}
}
