package dispatch

import (
	"context"
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
func cancelSetup(tb testing.TB, mode protocol.Mode, reg prometheus.Registerer) (f *fixture, sleepFn, quick store.Function) {
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
// sleep and returns the sleep's id, the noop's id and the time from the cancel to the noop's
// end: an upper bound of the time the slot took to free (the noop still has to be claimed,
// sent and run).
func cancelRunning(tb testing.TB, f *fixture, sleepFn, quick store.Function) (sleepID, nextID string, freed time.Duration) {
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
	start := time.Now()
	got, err := f.st.Cancel(ctx, store.DefaultNamespace, []string{sleepID})
	if err != nil || len(got) != 1 || got[0].Was != task.Running {
		tb.Fatalf("Cancel = %+v, %v; want it was RUNNING", got, err)
	}
	f.waitTerminalFast(tb, nextID)
	return sleepID, nextID, time.Since(start)
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
			sleepID, nextID, freed := cancelRunning(t, f, sleepFn, quick)
			if freed > 5*time.Second {
				t.Errorf("the next task ended %v after the cancel: the slot was not freed", freed)
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

// BenchmarkCancelFreesSlot measures, per mode, the time from cancelling a RUNNING 10 s sleep
// in the only slot to the end of the noop queued behind it (ms/cancel: the slot freed, plus a
// claim and a noop run). docs/BENCHMARKS.md has the figures.
func BenchmarkCancelFreesSlot(b *testing.B) {
	for _, mode := range allModes {
		b.Run(string(mode), func(b *testing.B) {
			f, sleepFn, quick := cancelSetup(b, mode, nil)
			var total, worst time.Duration
			n := 0
			for b.Loop() {
				_, _, freed := cancelRunning(b, f, sleepFn, quick)
				total += freed
				worst = max(worst, freed)
				n++
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/cancel")
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
			b.Logf("%s: %d cancels, mean %v, worst %v", mode, n, total/time.Duration(n), worst)
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
