package sandbox

// Pre-initialized reactors (docs/RATIONALE.md, "Reactor snapshots"). A reactor exports run
// and optionally _initialize. The first Run of a reactor in this Sandbox pre-initializes it:
// one instance of the module, its mutable globals exported for the occasion, runs
// _initialize under the task's limits and the metered deadline; its linear memory and
// mutable globals are then captured and baked into a second module, the snapshot module:
//
//   - each mutable global the module defines gets the captured value as its initial value;
//   - the memory's minimum becomes the captured size; the active data segments are emptied
//     and the non-zero 4 KiB chunks of the captured memory appended as new active segments,
//     so an instance's memory set-up writes only what is not zero (fresh memory is zero);
//   - the start section is dropped: it ran before _initialize, its effects are in the
//     snapshot.
//
// Every task then instantiates the snapshot module afresh and calls run: nothing one task
// does is seen by the next. The snapshot module is compiled once and kept with the compiled
// module in the cache, and closed with it.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"faas/task"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// The two function ABIs (docs/API.md, "Writing a function").
const (
	ABICommand = "command" // exports _start: a program with main, run once per task
	ABIReactor = "reactor" // exports run (and optionally _initialize): pre-initialized once
)

// globalExportPrefix names the exports the pre-initialization module gives the mutable
// globals it captures. A module exporting a name with this prefix is refused, like the
// metering's names.
const globalExportPrefix = "faas:global:"

// chunkSize is the granularity at which the captured memory is scanned for non-zero bytes.
const chunkSize = 4096

// reactor is what a reactor's cache entry keeps to pre-initialize it, then its snapshot.
type reactor struct {
	mu            sync.Mutex
	making        chan struct{} // closed when the pre-initialization under way ends
	wasm          []byte        // the instrumented module; dropped once the snapshot is made
	hasInit       bool
	importGlobals uint32      // WASI imports no globals, kept for the index arithmetic
	userGlobals   uint32      // the globals the module defines itself
	globals       []globalDef // its mutable ones, exported in the compiled module
	snap          *snapshot
}

// snapshot is a reactor's pre-initialized module.
type snapshot struct {
	compiled wazero.CompiledModule
	image    *cowImage // the memory, mapped copy-on-write into each instance; nil: in data segments
	pages    uint32    // linear memory pages an instance starts with
	written  int64     // bytes of data segments an instance's set-up copies (the non-zero chunks)
	// imageBytes is what its memory weighs in the cache's byte bound (charge adds its code).
	imageBytes int64
}

// charge adds a snapshot to its entry's weight in the cache's byte bound, its compiled code
// counted as much as the module's own (the same functions), and evicts what no longer fits.
func (s *Sandbox) charge(e *entry, snap *snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.evicted || s.closed {
		return
	}
	n := e.bytes + snap.imageBytes
	e.bytes += n
	s.bytes += n
	s.evictLocked(context.Background())
}

func (rx *reactor) close(ctx context.Context) {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	if rx.snap != nil {
		_ = rx.snap.compiled.Close(ctx)
		if rx.snap.image != nil {
			rx.snap.image.close() // instances still mapping it keep their mappings
		}
		rx.snap = nil
	}
}

// snapshotOf returns e's snapshot, pre-initializing the reactor first if no Run has yet. A
// pre-initialization that fails comes back as the Result of the task that asked for it (its
// kind as for a task, its message naming _initialize); the next task tries again.
func (s *Sandbox) snapshotOf(ctx context.Context, e *entry, name string, limits task.Limits) (*snapshot, *Result, error) {
	rx := e.rx
	for {
		rx.mu.Lock()
		if rx.snap != nil {
			rx.mu.Unlock()
			return rx.snap, nil, nil
		}
		if wait := rx.making; wait != nil { // another task is pre-initializing it: wait for it
			rx.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		rx.making = done
		rx.mu.Unlock()
		snap, res, err := s.preinit(ctx, e, name, limits)
		rx.mu.Lock()
		rx.making = nil
		if snap != nil {
			rx.snap, rx.wasm = snap, nil
		}
		rx.mu.Unlock()
		close(done)
		if snap != nil {
			s.charge(e, snap)
		}
		return snap, res, err
	}
}

// newReactor returns what a reactor's entry keeps and the module to compile for it: wasm
// (instrumented) with its mutable globals exported, so that they can be read after
// _initialize. A mutable global of a type a snapshot cannot hold refuses the module.
func newReactor(f *wasmFile, wasm []byte) (*reactor, []byte, error) {
	rx := &reactor{hasInit: f.hasInit, importGlobals: f.importGlobals, userGlobals: f.userGlobals}
	secs, err := splitSections(wasm)
	if err != nil {
		return nil, nil, err
	}
	if rx.globals, err = rx.mutableGlobals(secs); err != nil {
		return nil, nil, err
	}
	// The bytes are kept until the snapshot is made from them.
	rx.wasm = joinSections(withGlobalExports(secs, rx.globals))
	return rx, rx.wasm, nil
}

// preinit runs _initialize once, in an instance of the compiled module, and builds the
// snapshot module from what it left.
func (s *Sandbox) preinit(ctx context.Context, e *entry, name string, limits task.Limits) (*snapshot, *Result, error) {
	rx := e.rx
	secs, err := splitSections(rx.wasm)
	if err != nil {
		return nil, initFailure(task.KindInternal, "the module could not be read back: "+err.Error()), nil
	}
	globals := rx.globals
	st := s.pool.Get().(*runState)
	defer s.pool.Put(st)
	tctx, cancel := context.WithTimeout(ctx, time.Duration(limits.TimeoutMs)*time.Millisecond)
	st.begin(tctx, cancel, nil, limits)
	st.mem.limit -= e.info.TableElements * tableElemBytes
	rctx := withMeter(experimental.WithMemoryAllocator(tctx, st), st)
	mod, runErr := st.call(rctx, e.compiled, st.config(name), e.budget, "")
	// Memory growth draws on the table budget too (budget.go): what _initialize took from it
	// beyond its memory growth is a table's.
	var budgetSet uint64
	memSet := len(st.mem.buf)
	if runErr == nil && st.budget != nil {
		budgetSet = st.budget.Get()
	}
	if runErr == nil && rx.hasInit {
		runErr = callInit(rctx, st, mod)
	}
	var capErr string
	var mem []byte
	var values []uint64
	if runErr == nil && st.limit == "" {
		if st.budget != nil && st.budget.Get()+uint64(len(st.mem.buf)-memSet) != budgetSet {
			capErr = "grew a table; a table cannot be captured in a snapshot (grow it in run instead)"
		} else {
			mem, values = capture(mod, globals)
		}
	}
	if mod != nil {
		_ = mod.Close(context.Background())
	}
	cancel()
	stdout, stderr := st.end()
	f, err := decide(ctx, tctx, st, runErr, limits)
	if err != nil {
		return nil, nil, err
	}
	if f == nil && capErr != "" {
		f = &task.Failure{Kind: task.KindInternal, Message: capErr}
	}
	if f != nil {
		r := initFailure(f.Kind, f.Message)
		r.Stdout, r.Stderr = stdout, stderr // what _initialize wrote, for the user to see why
		return nil, r, nil
	}

	var image *cowImage
	if !s.noCoW && len(mem) > 0 {
		if image, err = newCowImage(mem); err != nil {
			// Data segments do the same job, copying the non-zero chunks per instance.
			slog.Warn("sandbox: a reactor snapshot's memory stays in data segments", "module_sha256", e.hash, "err", err)
			image = nil
		}
	}
	out, written, err := snapshotSections(secs, globals, values, mem, rx.userGlobals, image == nil)
	if err == nil {
		var compiled wazero.CompiledModule
		if compiled, err = s.rt.CompileModule(ctx, out); err == nil {
			// len(mem) bounds the image from above: its zero chunks are holes.
			return &snapshot{compiled: compiled, image: image, pages: uint32(len(mem) >> 16), written: written, imageBytes: int64(len(mem))}, nil, nil
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
	}
	if image != nil {
		image.close()
	}
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	return nil, initFailure(task.KindInternal, "the snapshot module: "+err.Error()), nil
}

// callInit calls _initialize. A proc_exit, even with code 0, ends the instance before its
// state can be captured: a failure.
func callInit(ctx context.Context, st *runState, mod api.Module) error {
	_, err := mod.ExportedFunction("_initialize").Call(ctx)
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit):
		st.hit(task.KindExit, fmt.Sprintf("called proc_exit(%d); _initialize must return for its state to be captured", exit.ExitCode()))
	case err == nil && mod.IsClosed():
		st.hit(task.KindExit, "closed its instance; _initialize must return for its state to be captured")
	case err != nil:
		err = fmt.Errorf("module[] function[_initialize] failed: %w", err)
	}
	return err
}

func initFailure(kind task.Kind, msg string) *Result {
	return &Result{Failure: &task.Failure{Kind: kind, Message: "pre-initialization (_initialize): " + msg}}
}

// capture copies the instance's linear memory and reads the captured globals.
func capture(mod api.Module, globals []globalDef) ([]byte, []uint64) {
	var mem []byte
	if m := mod.Memory(); m != nil {
		if b, ok := m.Read(0, m.Size()); ok {
			mem = append([]byte(nil), b...)
		}
	}
	values := make([]uint64, len(globals))
	for i, g := range globals {
		if eg := mod.ExportedGlobal(g.exportName()); eg != nil {
			values[i] = eg.Get()
		}
	}
	return mem, values
}

// globalDef is a mutable global the module defines: its index and value type.
type globalDef struct {
	index   uint32 // in the global index space (imports first)
	defined uint32 // in the global section
	typ     byte
}

func (g globalDef) exportName() string {
	return globalExportPrefix + strconv.FormatUint(uint64(g.index), 10)
}

// mutableGlobals lists the module's own mutable globals (not the metering's, which come after
// them), refusing the types a snapshot cannot hold.
func (rx *reactor) mutableGlobals(secs []wasmSection) ([]globalDef, error) {
	var out []globalDef
	for _, sec := range secs {
		if sec.id != secGlobal {
			continue
		}
		r := &reader{b: sec.contents}
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		for i := uint32(0); i < n && i < rx.userGlobals; i++ {
			t, err := r.bytes(2)
			if err != nil {
				return nil, err
			}
			if _, err := (&wasmFile{}).copyConstExpr(r, nil); err != nil {
				return nil, err
			}
			if t[1] == 0 {
				continue
			}
			switch t[0] {
			case 0x7f, 0x7e, 0x7d, 0x7c: // i32 i64 f32 f64
			default:
				return nil, fmt.Errorf("is a reactor with a mutable global (%d) of type %#x; only numeric globals (i32, i64, f32, f64) can be captured in its snapshot", i, t[0])
			}
			out = append(out, globalDef{index: rx.importGlobals + i, defined: i, typ: t[0]})
		}
	}
	return out, nil
}

// splitSections splits a module (one the sandbox wrote) into its sections.
func splitSections(wasm []byte) ([]wasmSection, error) {
	r := &reader{b: wasm, off: 8}
	var secs []wasmSection
	for r.off < len(wasm) {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		b, err := r.bytes(uint64(size))
		if err != nil {
			return nil, err
		}
		secs = append(secs, wasmSection{id: id, contents: b})
	}
	return secs, nil
}

func joinSections(secs []wasmSection) []byte {
	n := 8
	for _, s := range secs {
		n += len(s.contents) + 6
	}
	out := append(make([]byte, 0, n), "\x00asm\x01\x00\x00\x00"...)
	for _, s := range secs {
		out = append(out, s.id)
		out = appendULEB(out, uint64(len(s.contents)))
		out = append(out, s.contents...)
	}
	return out
}

// withGlobalExports returns secs with every captured global exported (globalExportPrefix).
func withGlobalExports(secs []wasmSection, globals []globalDef) []wasmSection {
	if len(globals) == 0 {
		return secs
	}
	secs = append([]wasmSection(nil), secs...)
	var old uint64
	for _, s := range secs {
		if s.id == secExport {
			r := &reader{b: s.contents}
			n, _ := r.u32()
			old = uint64(n)
		}
	}
	var add []byte
	for _, g := range globals {
		name := g.exportName()
		add = appendULEB(add, uint64(len(name)))
		add = append(append(add, name...), 3) // a global
		add = appendULEB(add, uint64(g.index))
	}
	return extend(secs, secExport, old, uint64(len(globals)), add)
}

// constExpr is the constant expression giving a global of type typ the value v.
func constExpr(typ byte, v uint64) []byte {
	switch typ {
	case 0x7f:
		return append(appendSLEB([]byte{0x41}, int64(int32(uint32(v)))), 0x0b)
	case 0x7e:
		return append(appendSLEB([]byte{0x42}, int64(v)), 0x0b)
	case 0x7d:
		return append(binary.LittleEndian.AppendUint32([]byte{0x43}, uint32(v)), 0x0b)
	default: // 0x7c, checked by mutableGlobals
		return append(binary.LittleEndian.AppendUint64([]byte{0x44}, v), 0x0b)
	}
}
