package dispatch

import (
	"testing"
	"time"

	"faas/protocol"
	"faas/samples"
	"faas/task"
)

// TestSaturatedPool: a local pool of two (-w 2) on a machine of two cores, with eight
// spinning tasks submitted at once (infinite loops, loop-free call trees, start-section
// loops; timeout 1 s). Every thread runs guest code, and still every task ends FAILED
// timeout: the metering's refill calls look at the clock themselves and pass through Go,
// so no timer has to fire. Each task's overrun past its deadline is a measurement, logged
// (docs/BENCHMARKS.md records it), not asserted tightly. A normal task queued behind them
// completes.
func TestSaturatedPool(t *testing.T) {
	f := newFixture(t, protocol.ModeLocal)
	lim := task.Limits{TimeoutMs: 1000}
	var ids []string
	for _, c := range []struct {
		name string
		n    int
	}{{"infinite_loop", 3}, {"call_tree", 3}, {"start_loop", 2}} {
		fn := f.registerLimits(t, c.name, samples.Hostile[c.name], lim)
		ids = append(ids, f.submit(t, fn, repeat(c.n, ""))...)
	}
	normal := f.submit(t, f.register(t, "double", samples.DoubleWAT), [][]byte{[]byte("21")})[0]
	f.startDispatcher(t)
	recs := f.waitTerminal(t, append(ids, normal), time.Minute)
	var worst int64
	for _, r := range recs[:len(ids)] {
		if r.Status != task.Failed || r.Error == nil || r.Error.Kind != task.KindTimeout {
			t.Errorf("%s: %s %+v, want FAILED timeout", r.FunctionID, r.Status, r.Error)
			continue
		}
		over := r.DurationMs - lim.TimeoutMs
		worst = max(worst, over)
		t.Logf("task %s: ran %d ms under a %d ms deadline: overrun %d ms, %d cpu units", r.ID[:8], r.DurationMs, lim.TimeoutMs, over, r.CPUUnits)
		if over > 5000 {
			t.Errorf("task %s ran %d ms past its deadline", r.ID, over)
		}
	}
	t.Logf("saturated pool (-w 2, 8 spinning tasks, timeout 1 s): worst overrun %d ms", worst)
	if r := recs[len(ids)]; r.Status != task.Completed || string(r.Result) != "42" {
		t.Errorf("the normal task behind them: %s %q %+v", r.Status, r.Result, r.Error)
	}
}
