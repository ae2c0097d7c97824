package sandbox

import (
	"context"
	"errors"
	"fmt"

	"faas/task"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// runBudgeted instantiates a module whose table.grow calls are checked (tablegrow.go) without
// running _start, sets the budget its grows draw on, then runs _start, as InstantiateModule
// would have: an exit with code 0 is a success. A grow the budget refused makes the task
// out_of_memory.
func (st *runState) runBudgeted(ctx context.Context, e *entry, cfg wazero.ModuleConfig) (api.Module, error) {
	return st.call(ctx, e.compiled, cfg, true, "_start")
}

// call instantiates c without running _start, sets the table budget when budget is true (the
// module has one), and calls the exported function fn (none when ""): an exit with code 0 is
// a success. Reactors run this way (snapshot.go), with fn _initialize or run.
func (st *runState) call(ctx context.Context, c wazero.CompiledModule, cfg wazero.ModuleConfig, budget bool, fn string) (api.Module, error) {
	mod, err := st.s.rt.InstantiateModule(ctx, c, cfg.WithStartFunctions())
	if err != nil {
		st.checkBudget(mod)
		return mod, err
	}
	if budget {
		g, ok := mod.ExportedGlobal(budgetExport).(api.MutableGlobal)
		if !ok { // cannot happen: parseWasm exported it, and Validate refuses modules that do
			return mod, errors.New("the table budget global is missing")
		}
		left := int64(st.mem.limit) - int64(len(st.mem.buf)) // the limit net of the initial tables
		g.Set(uint64(max(left, 0)))
		st.budget = g
	}
	if fn == "" {
		return mod, nil
	}
	f := mod.ExportedFunction(fn)
	if f == nil { // cannot happen: compile checked the exports
		return mod, fmt.Errorf("the module does not export %s", fn)
	}
	_, err = f.Call(ctx)
	st.checkBudget(mod)
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		err = nil
	} else if err != nil && exit == nil {
		err = fmt.Errorf("module[] function[%s] failed: %w", fn, err)
	}
	return mod, err
}

// checkBudget records out_of_memory when a helper refused a table.grow.
func (st *runState) checkBudget(mod api.Module) {
	if mod == nil {
		return
	}
	g := mod.ExportedGlobal(budgetExport)
	if g == nil || int64(g.Get()) != budgetRefused {
		return
	}
	st.hit(task.KindOutOfMemory, fmt.Sprintf("table.grow past the memory limit of %d MiB (memory_mb; each table element takes %d bytes) or past %d elements in all tables (table size limit)",
		st.limits.MemoryMB, tableElemBytes, maxTableSize))
}

// charge draws a memory growth to size bytes from the table budget, when the module has one,
// so tables and memory share memory_mb. It answers false when the budget cannot pay.
func (m *linearMemory) charge(size uint64) bool {
	g := m.st.budget
	if g == nil || size <= uint64(len(m.buf)) {
		return true
	}
	delta, left := int64(size-uint64(len(m.buf))), int64(g.Get())
	if left < delta {
		return false
	}
	g.Set(uint64(left - delta))
	return true
}
