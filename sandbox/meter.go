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
// function entry and every loop header a check. At a function entry:
//
//	counter -= 1; if counter < 0 { counter = refill() }
//
// Loops count in a local instead (P, one more i64 local of each function with loops), kept
// in a register: counting in the counter, a global in memory, made a tight loop 1.45x slower
// (a load and a store on the loop's critical path); counting in P costs ~1.0x.
//
//	P += 1; if P >= loopBatch { counter -= P; P = 0; if counter < 0 { counter = refill() } }
//
// What P holds is charged to the counter before every way out of the function (return, a
// branch to its label, its final end) and before every call of an import (WASI, proc_exit
// among them), with a refill if that took the counter below zero. So the count is exact for
// every function that returns or calls an import; a trap, or a stop by the sandbox, loses
// what the P of each active frame held (under loopBatch each): the count stays the same from
// run to run, only those last iterations are not in it.
//
// refill is a call into Go: there the task's deadline, its limits and its caller's
// cancellation are looked at, and the guest's goroutine passes through Go code, where the
// scheduler can take it off its thread, so a pool whose every thread runs guest code still
// stops each guest on time. No timer and no WithCloseOnContextDone are needed.
//
// The counter starts at 0, so the first check (the start function's or _start's entry) calls
// refill at once. A unit of CPU (cpu_units) is one function entry or one loop iteration.
// Counted from the counter: refill adds to it what it hands out, so units = all it added -
// the counter's final value.

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
	// loopBatch is how many iterations a loop counts in its local before charging them.
	loopBatch = 1024
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
	added    uint64     // what the refills added to the counter (from its value, below 0, to R)
	counter  api.Global // the counter of the running instance, found at the first refill
	deadline time.Time
}

func (st *runState) refill(mod api.Module) int64 {
	m := &st.meter
	if m.counter == nil {
		m.counter = mod.ExportedGlobal(meterExport)
		if m.counter == nil { // cannot happen: parseWasm exported it
			panic(errMeterStop)
		}
	}
	c := int64(m.counter.Get()) // below 0
	n := m.added - uint64(c)    // units so far
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
		r = uint64(l) - n // the next refill comes at unit l+1 (in a loop: within loopBatch after)
	}
	m.added += r - uint64(c)
	return int64(r)
}

// units is the number of units the run used.
func (m *meter) units() uint64 {
	if m.counter == nil {
		return 0
	}
	return m.added - m.counter.Get() // the counter may be below 0: unsigned wrap-around is exact
}

// meterBody returns body i (head: its local declarations, of which there are groups; code:
// its instructions) metered: the entry check first, then code with its edits applied. A body
// with loops gets one more local, P, in which its loops count (see the top of this file).
func (f *wasmFile) meterBody(i uint32, head []byte, groups uint32, code []byte, edits []edit, br *reader) ([]byte, error) {
	loops, calls, lazyCalls := false, false, false
	for _, e := range edits {
		loops = loops || e.kind == editLoop
		calls = calls || (e.kind == editCall && e.idx >= uint32(f.importFuncs))
		lazyCalls = lazyCalls || (f.lazy != nil && e.kind == editIndirect && e.idx == 0)
	}
	out := make([]byte, 0, len(head)+len(code)+len(f.check)*(1+len(edits))+8)
	var loopCheck, flush []byte
	var pIndex, tIndex uint64
	if loops || lazyCalls {
		if uint64(i) >= uint64(len(f.funcTypes)) || uint64(f.funcTypes[i]) >= uint64(len(f.typeParams)) {
			return nil, br.fail("function without a valid type")
		}
		// P (loops) then T (lazy table checks) come after the parameters and the declared
		// locals: no index moves.
		var locals uint64
		hr := &reader{b: head}
		_, _ = hr.u32()
		for g := uint32(0); g < groups; g++ {
			n, _ := hr.u32()
			locals += uint64(n)
			hr.off++ // the type, checked by readCode
		}
		next := uint64(f.typeParams[f.funcTypes[i]]) + locals
		extra := uint64(0)
		if loops {
			pIndex, next, extra = next, next+1, extra+1
		}
		if lazyCalls {
			tIndex, extra = next, extra+1
		}
		out = appendULEB(out, uint64(groups)+extra)
		out = append(out, head[uleb32Size(head):]...)
		if loops {
			loopCheck, flush = f.loopCheckCode(pIndex), f.flushCode(pIndex)
			out = append(out, 1, 0x7e) // one i64
		}
		if lazyCalls {
			out = append(out, 1, 0x7f) // one i32
		}
	} else {
		out = append(out, head...)
	}
	if loops && calls {
		// A function that loops and calls (recursive fib) counts its entry in P too: the
		// counter is then touched once per call, at the exit's flush, not twice (fib(25):
		// 1.2x instead of 1.37x). A loop without calls is better off with the entry on the
		// counter: with the entry in P, wazero's compiler made the tight loop 1.45x slower.
		f.entryInP++
		out = append(append(out, 0x42, 0x01, 0x21), appendULEB(nil, pIndex)...)
	} else {
		out = append(out, f.check...)
	}
	prev := 0
	for _, e := range edits {
		out = append(out, code[prev:e.at]...)
		prev = e.end
		switch e.kind {
		case editLoop:
			out = append(out, loopCheck...)
		case editExit:
			out = append(out, flush...)
		case editFunc:
			out = appendULEB(out, uint64(f.remap(e.idx)))
		case editIndirect:
			if lazyCalls && e.idx == 0 {
				out = append(out, f.ensureCode(tIndex)...)
			}
		case editTableOp:
			f.lazyBroken = f.lazyBroken || f.lazy != nil
		case editCall:
			if e.idx < uint32(f.importFuncs) { // a host call (proc_exit among them): counts first
				out = append(out, flush...)
			}
			out = append(out, 0x10)
			out = appendULEB(out, uint64(f.remap(e.idx)))
		case editGrow:
			if f.reserved || uint64(e.idx) >= uint64(len(f.tables)) || !f.tables[e.idx].defined {
				// left alone: the module is refused (reserved), or wazero refuses the grow
				out = append(out, code[e.at:e.end]...)
				continue
			}
			out = append(out, 0x10) // call
			out = appendULEB(out, uint64(f.helperIndex(e.idx)))
		}
	}
	return append(out, code[prev:]...), nil
}

// uleb32Size is the length of the LEB128 integer b starts with.
func uleb32Size(b []byte) int {
	for i, c := range b {
		if c&0x80 == 0 {
			return i + 1
		}
	}
	return len(b)
}
