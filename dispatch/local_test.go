package dispatch

import (
	"context"
	"strconv"
	"testing"
	"time"

	"faas/protocol"
	"faas/samples"
	"faas/task"
)

// TestLocalDrainsBacklog submits 1,000 tasks while no dispatcher runs, then starts one:
// every task completes with its own right result.
func TestLocalDrainsBacklog(t *testing.T) {
	f := newFixture(t, protocol.ModeLocal)
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

	stop := f.startDispatcher(t)
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
	f := newFixture(t, protocol.ModeLocal)
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
	f.startDispatcher(t)
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
