package dispatch

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"faas/samples"
	"faas/store"
	"faas/task"
)

// executorCase is one case of the executor suite every mode must pass.
type executorCase struct {
	name   string
	wasm   []byte
	limits task.Limits
	input  string
	result string    // when kind == ""
	kind   task.Kind // failure kind; "" = COMPLETED
}

// executorCases: every good sample's output and every hostile module's failure kind.
func executorCases() []executorCase {
	cases := []executorCase{
		{name: "double_wat", wasm: samples.DoubleWAT, input: "21", result: "42"},
		{name: "double_c", wasm: samples.DoubleC, input: "-7", result: "-14"},
		{name: "double_go", wasm: samples.DoubleGo, input: "100", result: "200"},
		{name: "double_as", wasm: samples.DoubleAS, input: " 5\n", result: "10"},
		{name: "double_go_reactor", wasm: samples.DoubleGoReactor, input: "100", result: "200"},
		{name: "double_c_reactor", wasm: samples.DoubleCReactor, input: "-7", result: "-14"},
		{name: "double_as_reactor", wasm: samples.DoubleASReactor, input: " 5\n", result: "10"},
		{name: "double_bad_input", wasm: samples.DoubleWAT, input: "x", kind: "exit"},
		{name: "noop", wasm: samples.Noop, input: "", result: ""},
		{name: "echo_binary", wasm: samples.Echo, input: "a\x00b\xff\n", result: "a\x00b\xff\n"},
		{name: "wordcount", wasm: samples.Wordcount, input: "one two\nthree\n", result: `{"lines":2,"words":3,"bytes":14}`},
		{name: "fib", wasm: samples.Fib, input: "20", result: "6765"},
		{name: "sleep", wasm: samples.Sleep, input: "20", result: "slept 20 ms"},
		{name: "spin_cpu_limit", wasm: samples.Spin, limits: task.Limits{CPUUnits: 1000}, kind: task.KindCPULimit},
	}
	names := make([]string, 0, len(samples.Hostile))
	for name := range samples.Hostile {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		kind := samples.HostileKind[name]
		if kind == "" {
			continue // refused at registration: never runs
		}
		c := executorCase{name: name, wasm: samples.Hostile[name], kind: kind}
		if kind == "timeout" {
			c.limits.TimeoutMs = 1000
		}
		cases = append(cases, c)
	}
	return cases
}

// TestModesExecutor runs the same executor cases in local, pull and push mode: each task
// ends with the right output or failure kind, counted once in the dispatcher's metrics,
// and afterwards the workers still serve. The cpu_units of the deterministic cases are the
// same in every mode.
func TestModesExecutor(t *testing.T) {
	units := map[string]map[string]uint64{} // case -> mode -> cpu_units
	defer func() {
		t.Logf("cpu_units of fib(20) by mode: %v; of wordcount: %v", units["fib"], units["wordcount"])
		for mode, u := range units["spin_cpu_limit"] {
			if u <= 1000 || u > 1000+1024 {
				t.Errorf("%s: spin under cpu_units=1000 stopped at unit %d, want within 1024 past the limit", mode, u)
			}
		}
		for name, by := range units {
			var first uint64
			for mode, u := range by {
				if u == 0 || (first != 0 && u != first) {
					t.Errorf("%s: cpu_units differ across modes or are 0: %v (%s)", name, by, mode)
					break
				}
				first = u
			}
		}
	}()
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			f := newFixture(t, mode)
			cases := executorCases()
			ids := make([]string, len(cases))
			fns := make(map[string]store.Function)
			for i, c := range cases {
				fn := f.registerLimits(t, c.name, c.wasm, c.limits)
				fns[c.name] = fn
				ids[i] = f.submit(t, fn, [][]byte{[]byte(c.input)})[0]
			}
			reg := prometheus.NewRegistry()
			f.cfg.Metrics = reg
			// This test counts runs ("a task's own failure is not re-run"), not the detection
			// of lost workers: six hostile tasks at once on two cores under -race starved a
			// worker's heartbeats past the fixture's 1 s timeout in CI, its tasks were re-run
			// as worker_lost (correctly) and the counts were off. Detection has tests of its
			// own (faults_test.go).
			f.cfg.HeartbeatTimeout = 10 * time.Second
			f.startDispatcher(t)
			if mode.Remote() {
				f.startWorker(t, "w1", 3)
				f.startWorker(t, "w2", 3)
			}
			recs := f.waitTerminal(t, ids, 2*time.Minute)
			for i, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					checkCase(t, recs[i], c)
				})
				switch c.name { // the same code path whatever the clock: the same units
				case "double_wat", "double_c", "double_bad_input", "noop", "echo_binary", "wordcount", "fib", "unreachable", "exit_nonzero", "spin_cpu_limit":
					if units[c.name] == nil {
						units[c.name] = map[string]uint64{}
					}
					units[c.name][string(mode)] = recs[i].CPUUnits
				}
			}
			wantFinished(t, reg, recs)

			// Still serving after every hostile module.
			inputs := make([][]byte, 50)
			want := make([]string, len(inputs))
			for i := range inputs {
				inputs[i] = []byte(fmt.Sprint(i))
				want[i] = fmt.Sprint(2 * i)
			}
			after := f.waitTerminal(t, f.submit(t, fns["double_wat"], inputs), time.Minute)
			if !mode.Remote() {
				checkResults(t, after, want)
			} else {
				checkResults(t, after, want, "w1", "w2")
			}
		})
	}
}

func checkCase(t *testing.T, r store.Record, c executorCase) {
	t.Helper()
	if c.kind == "" {
		if r.Status != task.Completed || string(r.Result) != c.result {
			t.Fatalf("%s %q %+v, want COMPLETED %q", r.Status, r.Result, r.Error, c.result)
		}
		return
	}
	if r.Status != task.Failed || r.Error == nil || r.Error.Kind != c.kind {
		t.Fatalf("%s %+v (result %q), want FAILED %s", r.Status, r.Error, r.Result, c.kind)
	}
	if r.Attempts != 1 {
		t.Errorf("ran %d times: a task's own failure must not be re-run", r.Attempts)
	}
}
