package dispatch

import (
	"testing"
	"time"

	"faas/samples"
	"faas/task"
)

// TestModesReactorIsolation runs the isolation reactors many times in every mode: each task
// starts from the snapshot its dispatcher or worker made, never from another task's state.
func TestModesReactorIsolation(t *testing.T) {
	cases := []struct {
		name, want string
		wasm       []byte
		limits     task.Limits
		n          int
	}{
		{"counter", "1 1", samples.ReactorCounter, task.Limits{}, 30},
		{"fill", "0", samples.ReactorFill, task.Limits{}, 10},
		{"grow", "17", samples.ReactorGrow, task.Limits{MemoryMB: 2}, 10}, // a leak would not fit
		{"clock", "ok", samples.ReactorClock, task.Limits{}, 5},
		{"gomap", "calls=1 map=0", samples.ReactorGoMap, task.Limits{}, 10},
	}
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			f := newFixture(t, mode)
			var ids []string
			var want []string
			for _, c := range cases {
				fn := f.registerLimits(t, c.name, c.wasm, c.limits)
				inputs := make([][]byte, c.n)
				for i := range inputs {
					inputs[i] = []byte("x")
					want = append(want, c.want)
				}
				ids = append(ids, f.submit(t, fn, inputs)...)
			}
			f.startDispatcher(t)
			if mode.Remote() {
				f.startWorker(t, "w1", 2)
				f.startWorker(t, "w2", 2)
			}
			recs := f.waitTerminal(t, ids, 2*time.Minute)
			var workers []string
			if mode.Remote() {
				workers = []string{"w1", "w2"}
			}
			checkResults(t, recs, want, workers...)
		})
	}
}
