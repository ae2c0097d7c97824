package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"faas/task"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Metering (docs/RATIONALE.md, "Metered guest code"). parseWasm gives every module a private
// mutable i64 global, the counter, and an import of meterModule.meterFunc, and makes every
// function entry and every loop header a check:
//
//	counter -= 1; if counter < 0 { counter = refill() }
//
// That is a few instructions in machine code, and a call into Go (refill, below) once every
// meterRefill checks: there the task's deadline, its limits and its caller's cancellation are
// looked at, and the guest's goroutine passes through Go code, where the scheduler can take
// it off its thread, so a pool whose every thread runs guest code still stops each guest on
// time. No timer and no WithCloseOnContextDone are needed.
//
// The counter starts at 0, so the first check (the start function's or _start's entry) calls
// refill at once. A unit of CPU (cpu_units) is one check: a function entry or a loop
// iteration. Counted exactly: each refill of R adds R+1 checks before the counter is below
// zero again, so units = sum(R+1) - the counter's final value.

const (
	// meterModule is the private module of the refill function. User modules cannot import
	// it: validation accepts no import outside wasi_snapshot_preview1.
	meterModule = "faas:meter"
	meterFunc   = "refill"
	// meterExport is the name the counter is exported under, so Run can read it at the end.
	// A module exporting it itself is refused, like budgetExport.
	meterExport = "faas:cpu_counter"
	// meterRefill is the number of checks between calls into Go. A check costs 1-3 ns of
	// guest time in the tightest code (a loop of two instructions), so Go looks at the
	// deadline at least every ~0.3 ms; the call costs ~0.1 µs, so 0.1% at worst.
	meterRefill = 100_000
)

// errMeterStop ends a guest from refill: its deadline passed, a limit was hit, or its caller
// gave up. Run decides the outcome from runState, not from this error.
var errMeterStop = errors.New("stopped by the sandbox")

type meterKey struct{}

// withMeter makes st the runState the refill calls of a run answer to.
func withMeter(ctx context.Context, st *runState) context.Context {
	return context.WithValue(ctx, meterKey{}, st)
}

// instantiateMeter adds the refill host function to rt.
func instantiateMeter(ctx context.Context, rt wazero.Runtime) error {
	_, err := rt.NewHostModuleBuilder(meterModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(refill), nil, []api.ValueType{api.ValueTypeI64}).
		Export(meterFunc).
		Instantiate(ctx)
	return err
}

// refill is the host function of every check whose counter went below zero. It answers the
// counter's new value, or panics with errMeterStop to end the guest (wazero turns the panic
// into the error of the call).
func refill(ctx context.Context, mod api.Module, stack []uint64) {
	st, _ := ctx.Value(meterKey{}).(*runState)
	if st == nil { // called outside Run (cannot happen in the sandbox's own runtime)
		stack[0] = meterRefill
		return
	}
	stack[0] = uint64(st.refill(mod))
}

// meter is a run's CPU accounting.
type meter struct {
	given    uint64     // the sum of R+1 over the refills so far
	counter  api.Global // the counter of the running instance, found at the first refill
	deadline time.Time
}

func (st *runState) refill(mod api.Module) int64 {
	m := &st.meter
	if m.counter == nil {
		m.counter = mod.ExportedGlobal(meterExport)
	}
	n := m.given + 1 // checks so far, this one included
	switch {
	case st.ctx.Err() != nil: // a limit was hit (hit cancels), the deadline, or the caller
		if errors.Is(st.ctx.Err(), context.DeadlineExceeded) {
			st.hit(task.KindTimeout, timeoutFailure(st.limits).Message)
		}
		panic(errMeterStop)
	case !time.Now().Before(m.deadline): // the timer may not have fired yet: look at the clock
		st.hit(task.KindTimeout, timeoutFailure(st.limits).Message)
		panic(errMeterStop)
	case st.limits.CPUUnits > 0 && n > uint64(st.limits.CPUUnits):
		st.hit(task.KindCPULimit, fmt.Sprintf("used more than %d cpu units (cpu_units)", st.limits.CPUUnits))
		panic(errMeterStop)
	}
	r := uint64(meterRefill)
	if l := st.limits.CPUUnits; l > 0 && uint64(l)-n < r {
		r = uint64(l) - n // the next refill comes exactly at check l+1: a deterministic stop
	}
	m.given += r + 1
	return int64(r)
}

// units is the number of checks the run passed.
func (m *meter) units() uint64 {
	if m.counter == nil {
		return 0
	}
	return m.given - m.counter.Get() // the counter is -1..R: unsigned wrap-around is exact
}
