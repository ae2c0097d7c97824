// Package sandbox runs functions, WASI preview1 command modules, safely on wazero.
//
// A Sandbox compiles each module once (a bounded LRU keyed by the sha256 of its bytes, backed
// by wazero's on-disk compilation cache when Config.CacheDir is set), metered (meter.go), and
// instantiates it afresh, anonymously, for every task. Run enforces a task's Limits: a
// wall-clock deadline that stops loops, start sections, sleeps and loop-free call trees; an
// optional budget of CPU units; a memory cap per task; a stdout cap. Task failures come back as a Failure with a Kind from the REST contract; the
// error of Run is kept for the caller's own problems (module not loaded, context cancelled).
//
// The function ABI (docs/API.md, "Writing a function"): stdin is the input, stdout the result, stderr a capped
// log; argv is the function's name; no environment, no files, no network; real clocks,
// cryptographic random bytes, and a sleep that really sleeps until the task's deadline.
package sandbox

import (
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"faas/task"
	"fmt"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Config configures a Sandbox. Every zero value is a working default.
type Config struct {
	CacheDir         string     // wazero on-disk compilation cache; "" = none (with Isolate: a private temp dir)
	MaxCompiled      int        // bounded LRU of compiled modules; 0 = 256
	StderrBytes      int64      // stderr tail kept per task; 0 = 64 KiB
	MaxCompiledBytes int64      // and by estimated bytes (isolate.go); 0 = DefaultMaxCompiledBytes
	CacheMaxBytes    int64      // LRU bound of the on-disk cache; 0 = DefaultCacheMaxBytes
	Isolate          *Isolation // compile first in a bounded child process; nil = in-process only
}

const wasiModule = wasi_snapshot_preview1.ModuleName

// Sandbox compiles and runs modules. It is safe for concurrent use.
type Sandbox struct {
	rt          wazero.Runtime
	cache       wazero.CompilationCache // nil without CacheDir
	wasi        map[string]api.FunctionDefinition
	baseCfg     wazero.ModuleConfig
	stderrBytes int64
	maxCompiled int
	instrument  bool
	noCoW       bool       // reactor snapshots in data segments, never mapped (benchmarks)
	maxBytes    int64      // bound of the compiled entries' bytes
	iso         *isolator  // nil: compile in-process only
	disk        *diskCache // nil without an on-disk cache

	mu      sync.Mutex
	closed  bool
	entries map[string]*entry
	lru     *list.List // of *entry, most recently used first
	bytes   int64      // sum of the entries' bytes
	loading map[string]chan struct{}
	pool    sync.Pool // of *runState
}

// entry is one compiled module in the cache. refs counts the Runs using it: an evicted entry
// is closed when the last of them ends.
type entry struct {
	hash     string
	compiled wazero.CompiledModule
	info     ModuleInfo
	elem     *list.Element
	refs     int
	evicted  bool
	budget   bool // table.grow was instrumented: Run must set the budget global (tablegrow.go)
	bytes    int64
	rx       *reactor // nil for a command (snapshot.go)
}

// close closes the compiled module and, for a reactor, its snapshot's.
func (e *entry) close(ctx context.Context) {
	_ = e.compiled.Close(ctx)
	if e.rx != nil {
		e.rx.close(ctx)
	}
}

// New creates a Sandbox: one wazero runtime (compiler) with WASI preview1 and the private
// refill function of the metering instantiated in it.
func New(ctx context.Context, cfg Config) (*Sandbox, error) {
	return newSandbox(ctx, cfg, options{})
}

// options let benchmarks turn safety off to measure what it costs. Production code never
// does: without instrumentation a deadline cannot stop a running guest.
type options struct {
	noInstrument bool
	noCoW        bool // compare copy-on-write snapshot memory with data segments
}

func newSandbox(ctx context.Context, cfg Config, opt options) (*Sandbox, error) {
	s := &Sandbox{
		instrument:  !opt.noInstrument,
		noCoW:       opt.noCoW,
		stderrBytes: cfg.StderrBytes,
		maxCompiled: cfg.MaxCompiled,
		entries:     map[string]*entry{},
		lru:         list.New(),
		loading:     map[string]chan struct{}{},
	}
	if s.stderrBytes <= 0 {
		s.stderrBytes = 64 << 10
	}
	if s.maxCompiled <= 0 {
		s.maxCompiled = 256
	}
	if err := s.setupStorage(&cfg); err != nil {
		return nil, err
	}
	rc := wazero.NewRuntimeConfig().
		// The metering stops guests (meter.go); close-on-done would add an exit into Go at
		// every loop header, 10-50x on CPU-bound code.
		WithCloseOnContextDone(false).
		// DWARF offsets would not match the instrumented code; function names still show.
		WithDebugInfoEnabled(false)
	if cfg.CacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("sandbox: compilation cache %s: %w", cfg.CacheDir, err)
		}
		s.cache = cache
		rc = rc.WithCompilationCache(cache)
	}
	s.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, s.rt); err != nil {
		_ = s.rt.Close(ctx)
		return nil, fmt.Errorf("sandbox: instantiate WASI: %w", err)
	}
	if err := instantiateMeter(ctx, s.rt); err != nil {
		_ = s.rt.Close(ctx)
		return nil, fmt.Errorf("sandbox: instantiate the meter: %w", err)
	}
	s.wasi = s.rt.Module(wasiModule).ExportedFunctionDefinitions()
	// Everything every task shares; Run adds stdin, stdout, stderr, sleep and argv.
	s.baseCfg = wazero.NewModuleConfig().
		WithName(""). // anonymous: no name collisions between concurrent instances
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	s.pool.New = func() any { return newRunState(s) }
	return s, nil
}

// Close closes every compiled module and the runtime (ending any instance still running).
func (s *Sandbox) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	// A reactor's snapshot holds a memfd and spare memory (cow_linux.go): closed now, or by
	// the last task still running it.
	var idle []*entry
	for _, e := range s.entries {
		if e.refs == 0 {
			idle = append(idle, e)
		} else {
			e.evicted = true
		}
	}
	s.entries = map[string]*entry{}
	s.lru.Init()
	s.mu.Unlock()
	for _, e := range idle {
		if e.rx != nil {
			e.rx.close(ctx)
		}
	}
	err := s.rt.Close(ctx)
	if s.cache != nil {
		err = errors.Join(err, s.cache.Close(ctx))
	}
	s.iso.close()
	return err
}

// Loaded reports whether the module with this hash is compiled and cached.
func (s *Sandbox) Loaded(hash string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.entries[hash]
	return ok
}

// Load validates the parts of wasm every function needs (WASI-only imports, a _start export),
// compiles it unless it is cached, and caches it under its hash, which it returns. Refusals
// are *ValidationError. Memory limits are not checked here (see Validate; Run checks them).
func (s *Sandbox) Load(ctx context.Context, wasm []byte) (string, error) {
	e, err := s.load(ctx, wasm, Hash(wasm), nil)
	if err != nil {
		return "", err
	}
	s.release(e)
	return e.hash, nil
}

// Validate decides whether wasm may be registered as a function with these limits: it must
// decode and compile, export _start, import nothing outside wasi_snapshot_preview1, and start
// with no more memory than limits.MemoryMB (zero: the default). It compiles and caches the
// module on the way. A refusal is a *ValidationError (errors.Is ErrInvalidModule); other
// errors are the sandbox's own (ErrClosed, ctx).
func (s *Sandbox) Validate(ctx context.Context, wasm []byte, limits task.Limits) (ModuleInfo, error) {
	limits = limits.WithDefaults()
	check := func(info *ModuleInfo) error { return checkMemory(info, limits) }
	e, err := s.load(ctx, wasm, Hash(wasm), check)
	if err != nil {
		return ModuleInfo{}, err
	}
	defer s.release(e)
	if err := check(&e.info); err != nil {
		return ModuleInfo{}, err
	}
	return e.info, nil
}

// load returns the cache entry for hash, compiling wasm if needed, with a reference the
// caller must release. pre, when set, runs on a fresh module's info before it is compiled, so
// a cheap refusal does not pay for a compilation.
func (s *Sandbox) load(ctx context.Context, wasm []byte, hash string, pre func(*ModuleInfo) error) (*entry, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if e, ok := s.entries[hash]; ok {
			e.refs++
			s.lru.MoveToFront(e.elem)
			s.mu.Unlock()
			return e, nil
		}
		wait, busy := s.loading[hash]
		if !busy {
			done := make(chan struct{})
			s.loading[hash] = done
			s.mu.Unlock()
			e, err := s.compile(ctx, wasm, hash, pre)
			s.mu.Lock()
			delete(s.loading, hash)
			close(done)
			if err == nil {
				if s.closed {
					err = ErrClosed
					e.close(ctx)
				} else {
					e.refs = 1
					e.elem = s.lru.PushFront(e)
					s.entries[hash] = e
					s.bytes += e.bytes
					s.evictLocked(ctx)
				}
			}
			s.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return e, nil
		}
		s.mu.Unlock()
		select { // another caller is compiling the same module: use its result
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *Sandbox) evictLocked(ctx context.Context) {
	for s.lru.Len() > s.maxCompiled || (s.bytes > s.maxBytes && s.lru.Len() > 1) {
		e := s.lru.Remove(s.lru.Back()).(*entry)
		delete(s.entries, e.hash)
		s.bytes -= e.bytes
		e.evicted = true
		if e.refs == 0 {
			e.close(ctx)
		}
	}
}

// acquire returns the cached entry for hash with a reference, or nil.
func (s *Sandbox) acquire(hash string) (*entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	e, ok := s.entries[hash]
	if !ok {
		return nil, ErrNotLoaded
	}
	e.refs++
	s.lru.MoveToFront(e.elem)
	return e, nil
}

func (s *Sandbox) release(e *entry) {
	s.mu.Lock()
	e.refs--
	closeIt := e.evicted && e.refs == 0
	s.mu.Unlock()
	if closeIt {
		e.close(context.Background())
	}
}

// compile checks wasm's structure, instruments and compiles it. A panic while doing so (a bug
// of ours or of wazero's decoder on a hostile module) refuses the module instead of crashing.
func (s *Sandbox) compile(ctx context.Context, wasm []byte, hash string, pre func(*ModuleInfo) error) (e *entry, err error) {
	defer func() {
		if p := recover(); p != nil {
			e, err = nil, invalid("could not be compiled (compiler panic: %v)", p)
		}
	}()
	f, instrumented, err := parseWasm(wasm, s.instrument)
	if err != nil {
		var le *limitError
		if errors.As(err, &le) {
			return nil, invalid("exceeds a structural limit: %v", err)
		}
		if errors.Is(err, errUnsupported) {
			return nil, invalid("uses an instruction the sandbox does not run: %v", err)
		}
		if errors.Is(err, errMalformed) {
			return nil, invalid("is not a valid WebAssembly module: %v", err)
		}
		return nil, invalid("%v", err)
	}
	info := ModuleInfo{Hash: hash, Size: int64(len(wasm)), Functions: f.funcs, Loops: f.loops, TableElements: f.tableElems()}
	if f.reserved {
		return nil, invalid("exports %s or %s, names the sandbox reserves", budgetExport, meterExport)
	}
	for _, im := range f.imports {
		full := im.module + "." + im.name
		info.Imports = append(info.Imports, full)
		switch {
		case im.module != wasiModule:
			return nil, invalid("imports %s, which is not WASI preview1 (a function may import only %s functions)", full, wasiModule)
		case im.kind != 0:
			return nil, invalid("imports %s as a %s; WASI preview1 provides only functions", full, externName(im.kind))
		case s.wasi[im.name] == nil:
			return nil, invalid("imports %s, which WASI preview1 does not provide", full)
		}
	}
	switch {
	case f.hasStart && f.hasRun:
		return nil, invalid("exports both _start and run: a function is either a command (exports _start: a program with main) or a reactor (exports run, and optionally _initialize), not both")
	case f.hasStart:
		info.ABI = ABICommand
	case f.hasRun:
		info.ABI = ABIReactor
	default:
		return nil, invalid("does not export a _start function (a WASI command: a program with main) nor a run function (a reactor: run, and optionally _initialize, exported by a WASI module built as a library, e.g. clang -mexec-model=reactor or Go -buildmode=c-shared)")
	}
	if f.hasMemory {
		if f.memMin > 65536 || (f.memHasMax && f.memMax > 65536) {
			return nil, invalid("declares more than 65536 pages (4 GiB) of memory")
		}
		info.MemoryMinPages = uint32(f.memMin)
		info.MemoryMaxPages, info.HasMemoryMax = uint32(f.memMax), f.memHasMax
	}
	if pre != nil {
		if err := pre(&info); err != nil {
			return nil, err
		}
	}
	if !s.instrument {
		instrumented = wasm
	}
	var rx *reactor
	if info.ABI == ABIReactor {
		// A reactor is compiled with its mutable globals exported: this module runs
		// _initialize, then the snapshot is read from it (snapshot.go).
		if rx, instrumented, err = newReactor(f, instrumented); err != nil {
			return nil, invalid("%v", err)
		}
	}
	size, err := s.beforeCompile(ctx, hash, wasm, instrumented)
	if err != nil {
		return nil, err
	}
	compiled, err := s.rt.CompileModule(ctx, instrumented)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, invalid("does not compile: %v", err)
	}
	if err := s.checkCompiled(compiled, info.ABI); err != nil {
		_ = compiled.Close(ctx)
		return nil, err
	}
	e = &entry{hash: hash, compiled: compiled, info: info, budget: s.instrument && len(f.grows) > 0, bytes: size}
	e.rx = rx
	return e, nil
}

// checkCompiled checks what needs types: the entry points' signatures (_start for a command;
// run and _initialize for a reactor), imported signatures.
func (s *Sandbox) checkCompiled(c wazero.CompiledModule, abi string) error {
	entries := []string{"_start"}
	if abi == ABIReactor {
		entries = []string{"run", "_initialize"}
	}
	for i, name := range entries {
		fn := c.ExportedFunctions()[name]
		if fn == nil {
			if i == 0 {
				return invalid("does not export a %s function", name)
			}
			continue // _initialize is optional
		}
		if len(fn.ParamTypes()) != 0 || len(fn.ResultTypes()) != 0 {
			return invalid("exports %s with type %s; it must take and return nothing", name, sig(fn))
		}
	}
	for _, fn := range c.ImportedFunctions() {
		mod, name, _ := fn.Import()
		if mod == meterModule && s.instrument {
			continue // ours: parseWasm added it, and refuses it in the module it was given
		}
		want := s.wasi[name]
		if mod != wasiModule || want == nil {
			return invalid("imports %s.%s, which is not WASI preview1", mod, name)
		}
		if sig(fn) != sig(want) {
			return invalid("imports %s.%s with type %s, but WASI preview1 defines it as %s", mod, name, sig(fn), sig(want))
		}
	}
	if mems := c.ImportedMemories(); len(mems) > 0 {
		return invalid("imports a memory; WASI preview1 provides only functions")
	}
	return nil
}
