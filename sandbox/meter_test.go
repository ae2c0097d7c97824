package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"faas/samples"
	"faas/task"
)

// TestCPUUnits: the count is exact and the same on every run; a cpu_units limit stops a task
// past its limit, within loopBatch units, at the same unit on every run.
func TestCPUUnits(t *testing.T) {
	s := sharedSandbox(t)
	ctx := context.Background()
	run := func(wasm []byte, in string, lim task.Limits) Result {
		t.Helper()
		res, err := s.Run(ctx, load(t, s, wasm), "f", []byte(in), lim)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// fib(25) makes 242,785 calls of fib; main, printf and the libc around them add the rest.
	a, b := run(samples.Fib, "25", task.Limits{}), run(samples.Fib, "25", task.Limits{})
	if a.Failure != nil || a.CPUUnits != b.CPUUnits || a.CPUUnits < 242_785 || a.CPUUnits > 260_000 {
		t.Errorf("fib(25): %v, %d then %d units", a.Failure, a.CPUUnits, b.CPUUnits)
	}
	// Realistic C: the same count twice (malloc, stdio, a merge sort).
	sa, sb := run(samples.Sort, "100000", task.Limits{}), run(samples.Sort, "100000", task.Limits{})
	if sa.Failure != nil || sa.CPUUnits != sb.CPUUnits || sa.CPUUnits < 100_000 {
		t.Errorf("sort 100000: %v, %d then %d units", sa.Failure, sa.CPUUnits, sb.CPUUnits)
	}
	t.Logf("cpu_units: fib(25) %d, sort of 100,000 integers %d", a.CPUUnits, sa.CPUUnits)
	// spin: _start's entry plus 10,000,000 loop iterations, nothing else.
	if r := run(samples.Spin, "", task.Limits{}); r.Failure != nil || r.CPUUnits != 10_000_001 {
		t.Errorf("spin: %v, %d units, want 10000001", r.Failure, r.CPUUnits)
	}
	for _, limit := range []int64{1, 1000, meterRefill, 3*meterRefill + 7} {
		r := run(samples.Spin, "", task.Limits{CPUUnits: limit})
		again := run(samples.Spin, "", task.Limits{CPUUnits: limit})
		if r.Failure == nil || r.Failure.Kind != task.KindCPULimit || r.CPUUnits <= uint64(limit) ||
			r.CPUUnits > uint64(limit)+loopBatch || again.CPUUnits != r.CPUUnits {
			t.Errorf("spin under cpu_units=%d: %v, %d then %d units, want cpu_limit within %d past the limit",
				limit, r.Failure, r.CPUUnits, again.CPUUnits, loopBatch)
		}
	}
	// A loop-free call tree stops exactly at limit+1: function entries count one by one.
	if r := run(samples.Hostile["call_tree"], "", task.Limits{CPUUnits: 5000}); r.Failure == nil ||
		r.Failure.Kind != task.KindCPULimit || r.CPUUnits != 5001 {
		t.Errorf("call tree under cpu_units=5000: %v, %d units, want cpu_limit at 5001", r.Failure, r.CPUUnits)
	}
	if r := run(samples.Spin, "", task.Limits{CPUUnits: 10_000_001}); r.Failure != nil {
		t.Errorf("spin under its exact need: %v", r.Failure)
	}
	// A task stopped by its deadline counts what it ran.
	if r := run(samples.Hostile["infinite_loop"], "", task.Limits{TimeoutMs: 50}); r.Failure == nil ||
		r.Failure.Kind != task.KindTimeout || r.CPUUnits < meterRefill {
		t.Errorf("infinite loop: %v, %d units", r.Failure, r.CPUUnits)
	}
}

// TestDeadlineOverrun measures how far past its deadline each spinning kind of guest runs on
// an idle machine: a measurement, logged (docs/BENCHMARKS.md records figures), not asserted
// beyond the coarse bound TestHostile already holds.
func TestDeadlineOverrun(t *testing.T) {
	s := sharedSandbox(t)
	const timeout = 100
	for _, name := range []string{"infinite_loop", "call_tree", "start_loop"} {
		h := load(t, s, samples.Hostile[name])
		var worst time.Duration
		for i := 0; i < 3; i++ {
			res, err := s.Run(context.Background(), h, name, nil, task.Limits{TimeoutMs: timeout})
			if err != nil || res.Failure == nil || res.Failure.Kind != task.KindTimeout {
				t.Fatalf("%s: %v %v", name, err, res.Failure)
			}
			worst = max(worst, res.Duration-timeout*time.Millisecond)
		}
		t.Logf("%s: worst overrun past a %d ms deadline: %v", name, timeout, worst)
	}
}

// TestUnknownInstructions: what the sandbox's runtime does not enable is refused at
// validation with the opcode and its offset, never run unmetered.
func TestUnknownInstructions(t *testing.T) {
	s := sharedSandbox(t)
	for _, c := range []struct {
		name string
		code []byte // after `0 locals`
		want string
	}{
		{"return_call", []byte{0x12, 0x00, 0x0b}, "opcode 0x12 (tail calls"},
		{"atomic.fence", []byte{0xfe, 0x03, 0x00, 0x0b}, "opcode 0xfe (threads"},
		{"try", []byte{0x06, 0x40, 0x0b, 0x0b}, "opcode 0x06 (exception handling"},
		{"relaxed simd", []byte{0xfd, 0x80, 0x02, 0x0b}, "vector instruction 0xfd 256"},
		{"simd hole", []byte{0xfd, 0x9a, 0x01, 0x0b}, "vector instruction 0xfd 154"},
		{"0xfc 18", []byte{0xfc, 18, 0x0b}, "instruction 0xfc 18"},
		{"0x27", []byte{0x27, 0x0b}, "opcode 0x27"},
	} {
		wasm := withBody(append([]byte{0}, c.code...))
		_, err := s.Validate(context.Background(), wasm, task.Limits{})
		// The body starts after header (8), type (7), function (4), export (12) sections, the
		// code section's id, size and count, the body's size and its locals: byte 35.
		if err == nil || !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), c.want) ||
			!strings.Contains(err.Error(), "at byte 35") {
			t.Errorf("%s: %v, want a refusal naming %q at byte 35", c.name, err, c.want)
		}
	}
}

// TestRemap: a module using every place a function index appears (start, exports, elements
// with indices and with expressions, ref.func in a global and in code, call, call_indirect)
// runs the same instrumented as bare wazero runs it.
func TestRemap(t *testing.T) {
	wasm := testdata(t, "remap.wasm")
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	_, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
	var bare string
	if err != nil {
		bare = err.Error()
	}
	s := sharedSandbox(t)
	res, rerr := s.Run(ctx, load(t, s, wasm), "remap", nil, task.Limits{})
	if rerr != nil || res.Failure == nil || res.Failure.Kind != task.KindExit || !strings.Contains(bare, "exit_code(42)") {
		t.Errorf("sandbox: %v %v; bare wazero: %v (want exit 42 from both)", rerr, res.Failure, bare)
	}
	if res.ExitCode != 42 {
		t.Errorf("exit code %d, want 42", res.ExitCode)
	}
}
