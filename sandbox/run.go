package sandbox

import (
	"bytes"
	"context"
	"errors"
	"faas/task"
	"fmt"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Result is what one run of a function produced.
type Result struct {
	Stdout   []byte        // the result (up to limits.StdoutBytes)
	Stderr   []byte        // the last Config.StderrBytes bytes of stderr
	ExitCode uint32        // the guest's exit code (0 when it returned from _start)
	CPUUnits uint64        // function entries and loop iterations run (meter.go)
	Duration time.Duration // instantiation + _start, the part under the deadline
	Failure  *task.Failure // nil: success (COMPLETED)
}

var (
	errOutputTooLarge = errors.New("stdout limit reached")
	errDeadline       = errors.New("task deadline reached")
)

// Run instantiates the cached module hash afresh (anonymous), with stdin as its input and
// argv [name], runs its _start under limits (zero fields: task.DefaultLimits) and closes it.
//
// Everything the task did wrong is in Result.Failure. The error is only ErrNotLoaded (Load
// the module and call again), ErrClosed, or ctx's error when ctx itself was cancelled before
// the task ended; the task's own deadline comes from limits.TimeoutMs and is a Failure of
// kind timeout.
func (s *Sandbox) Run(ctx context.Context, hash, name string, stdin []byte, limits task.Limits) (Result, error) {
	limits = limits.WithDefaults()
	e, err := s.acquire(hash)
	if err != nil {
		return Result{}, err
	}
	defer s.release(e)
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if int64(len(stdin)) > limits.StdinBytes {
		return Result{Failure: &task.Failure{Kind: task.KindInternal,
			Message: fmt.Sprintf("input is %d bytes, above the stdin_bytes limit of %d", len(stdin), limits.StdinBytes)}}, nil
	}
	info := e.info
	var snap *snapshot
	if e.rx != nil { // a reactor: start from its snapshot (snapshot.go), made by the first Run
		var fail *Result
		if snap, fail, err = s.snapshotOf(ctx, e, name, limits); err != nil || fail != nil {
			if fail == nil {
				return Result{}, err
			}
			return *fail, nil
		}
		info.MemoryMinPages = snap.pages
	}
	if min, lp := uint64(info.MemoryMinPages), limitPages(limits); min > lp {
		what := "the module starts"
		if snap != nil {
			what = "the module's snapshot (after _initialize) holds"
		}
		return Result{Failure: &task.Failure{Kind: task.KindOutOfMemory,
			Message: fmt.Sprintf("%s %d pages of memory, limit is %d (memory_mb=%d)", what, min, lp, limits.MemoryMB)}}, nil
	}
	if b, lim := info.startBytes(), limitPages(limits)<<16; b > lim {
		return Result{Failure: &task.Failure{Kind: task.KindOutOfMemory,
			Message: fmt.Sprintf("the module starts with %d table elements and %d pages of memory, %.1f MiB in all; limit is %d MiB (memory_mb=%d)",
				e.info.TableElements, e.info.MemoryMinPages, float64(b)/(1<<20), lim>>20, limits.MemoryMB)}}, nil
	}

	st := s.pool.Get().(*runState)
	defer s.pool.Put(st)
	tctx, cancel := context.WithTimeout(ctx, time.Duration(limits.TimeoutMs)*time.Millisecond)
	st.begin(tctx, cancel, stdin, limits)
	// The tables the module starts with take their part of memory_mb (checked above to fit).
	st.mem.limit -= e.info.TableElements * tableElemBytes
	if snap != nil {
		st.mem.image = snap.image
	}
	cfg := st.config(name)
	rctx := withMeter(experimental.WithMemoryAllocator(tctx, st), st)

	start := time.Now()
	var mod api.Module
	var runErr error
	switch {
	case snap != nil:
		mod, runErr = st.call(rctx, snap.compiled, cfg, e.budget, "run")
	case e.budget:
		mod, runErr = st.runBudgeted(rctx, e, cfg)
	default:
		mod, runErr = s.rt.InstantiateModule(rctx, e.compiled, cfg)
	}
	res := Result{Duration: time.Since(start), CPUUnits: st.meter.units()}
	if mod != nil {
		_ = mod.Close(context.Background())
	}
	cancel()
	res.Stdout, res.Stderr = st.end()

	f, err := decide(ctx, tctx, st, runErr, limits)
	if err != nil {
		return res, err
	}
	var exit *sys.ExitError
	if f != nil && f.Kind == task.KindExit && errors.As(runErr, &exit) {
		res.ExitCode = exit.ExitCode()
	}
	res.Failure = f
	return res, nil
}

// decide decides how a run ended from what the guest returned (runErr) and what the
// sandbox saw (st): nil for a success, the task's failure, or ctx's error when the caller
// gave up (shutdown), which is not the task's failure.
func decide(ctx, tctx context.Context, st *runState, runErr error, limits task.Limits) (*task.Failure, error) {
	var exit *sys.ExitError
	errors.As(runErr, &exit)
	switch {
	case st.sleepCut && ctx.Err() != nil:
		// The caller gave up (shutdown) during a sleep, which returned early: whatever the
		// guest did next (even exit 0) is not the task's outcome.
		return nil, ctx.Err()
	case runErr == nil && st.limit == "":
		return nil, nil
	case runErr != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case st.limit != "":
		return &task.Failure{Kind: st.limit, Message: st.limitMsg}, nil
	case errors.Is(tctx.Err(), context.DeadlineExceeded):
		// Whatever the guest did after its deadline (an exit, a trap), the kind is timeout.
		return timeoutFailure(limits), nil
	case exit != nil:
		return &task.Failure{Kind: task.KindExit, Message: fmt.Sprintf("exit code %d", exit.ExitCode())}, nil
	default:
		return &task.Failure{Kind: task.KindTrap, Message: trapMessage(runErr)}, nil
	}
}

func timeoutFailure(limits task.Limits) *task.Failure {
	return &task.Failure{Kind: task.KindTimeout, Message: fmt.Sprintf("ran past its deadline of %d ms (timeout_ms)", limits.TimeoutMs)}
}

// trapMessage keeps the first line of wazero's error (the stack trace follows it).
func trapMessage(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimSuffix(msg, " (recovered by wazero)")
	for _, fn := range []string{"_start", "run", "_initialize"} {
		msg = strings.TrimPrefix(msg, "module[] function["+fn+"] failed: ")
	}
	return msg
}

// runState is everything one run needs besides the module. States are pooled, with a
// ModuleConfig built once per state (per function name): its stdin, stdout, stderr and sleep
// point into the state, so a run allocates no config.
type runState struct {
	s      *Sandbox
	ctx    context.Context // the task's: deadline and limit cancellation
	cancel context.CancelFunc
	limits task.Limits

	stdin  bytes.Reader
	stdout capWriter
	stderr tailWriter
	mem    linearMemory

	limit    task.Kind // the first limit hit; decides the failure kind
	limitMsg string
	sleepCut bool // a sleep ended early for another reason than the deadline or a limit
	// budget is the module's table budget global (tablegrow.go), nil when it has none: bytes
	// of memory_mb left for table and memory growth alike.
	budget api.MutableGlobal
	meter  meter

	cfg     wazero.ModuleConfig
	cfgName string
}

func newRunState(s *Sandbox) *runState {
	st := &runState{s: s}
	st.stdout.st = st
	st.mem.st = st
	st.stderr.max = int(s.stderrBytes)
	return st
}

func (st *runState) config(name string) wazero.ModuleConfig {
	if st.cfg == nil || st.cfgName != name {
		st.cfg = st.s.baseCfg.
			WithArgs(name).
			WithStdin(&st.stdin).
			WithStdout(chunkedWriter{st, &st.stdout}). // hostcalls.go
			WithStderr(chunkedWriter{st, &st.stderr}).
			WithRandSource(randSource{st}).
			WithNanosleep(st.nanosleep)
		st.cfgName = name
	}
	return st.cfg
}

func (st *runState) begin(ctx context.Context, cancel context.CancelFunc, stdin []byte, limits task.Limits) {
	st.ctx, st.cancel, st.limits = ctx, cancel, limits
	st.stdin.Reset(stdin)
	st.stdout.buf, st.stdout.full = nil, false
	st.stderr.buf = st.stderr.buf[:0]
	st.mem = linearMemory{st: st, limit: limitPages(limits) << 16}
	st.limit, st.limitMsg = "", ""
	st.sleepCut = false
	st.budget = nil
	st.meter = meter{}
	st.meter.deadline, _ = ctx.Deadline()
}

// end returns the captured output and drops every reference to the task.
func (st *runState) end() (stdout, stderr []byte) {
	stdout = st.stdout.buf
	stderr = st.stderr.tail()
	st.stdout.buf = nil
	st.stdin.Reset(nil)
	st.mem.Free()
	st.mem = linearMemory{st: st}
	st.ctx, st.cancel = nil, nil
	st.budget = nil
	st.meter = meter{}
	return stdout, stderr
}

// hit records the first limit the task reached and cancels the task's context: the guest is
// stopped at its next refill (meter.go), within meterRefill function entries and loop
// iterations. A deadline already past wins: the kind is then timeout.
func (st *runState) hit(kind task.Kind, msg string) {
	if st.limit != "" {
		return
	}
	if errors.Is(st.ctx.Err(), context.DeadlineExceeded) {
		kind, msg = task.KindTimeout, timeoutFailure(st.limits).Message
	}
	st.limit, st.limitMsg = kind, msg
	st.cancel()
}

// nanosleep is WASI's sleep (poll_oneoff on a clock): it really waits, and ends at once when
// the task's deadline passes (then the task is a timeout, whatever the guest does next) or
// the caller gives up (then Run hands back the caller's error, whatever the guest does next).
func (st *runState) nanosleep(ns int64) {
	if ns <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	select {
	case <-t.C:
	case <-st.ctx.Done():
		t.Stop()
		if errors.Is(st.ctx.Err(), context.DeadlineExceeded) {
			st.hit(task.KindTimeout, "")
		} else if st.limit == "" {
			st.sleepCut = true
		}
	}
}

// capWriter is stdout: it keeps up to limits.StdoutBytes and, at the first byte past them,
// records output_too_large and fails every write from then on.
type capWriter struct {
	st   *runState
	buf  []byte
	full bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.full {
		return 0, errOutputTooLarge
	}
	room := w.st.limits.StdoutBytes - int64(len(w.buf))
	if int64(len(p)) <= room {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	w.buf = append(w.buf, p[:room]...)
	w.full = true
	w.st.hit(task.KindOutputTooLarge, fmt.Sprintf("wrote more than %d bytes to stdout (stdout_bytes)", w.st.limits.StdoutBytes))
	return int(room), errOutputTooLarge
}

// tailWriter is stderr: it keeps the last max bytes.
type tailWriter struct {
	buf []byte
	max int
}

func (w *tailWriter) Write(p []byte) (int, error) {
	n := len(p)
	if n >= w.max {
		w.buf = append(w.buf[:0], p[n-w.max:]...)
		return n, nil
	}
	if len(w.buf)+n > 2*w.max { // keep the buffer bounded: slide the tail to the front
		keep := w.buf[len(w.buf)-(w.max-n):]
		w.buf = append(w.buf[:0], keep...)
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

// tail returns a copy of the kept bytes (nil when none).
func (w *tailWriter) tail() []byte {
	b := w.buf
	if len(b) > w.max {
		b = b[len(b)-w.max:]
	}
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// Allocate makes runState a per-task experimental.MemoryAllocator: wazero asks it for the
// module's linear memory, which then refuses to grow past the task's memory limit.
func (st *runState) Allocate(capacity, max uint64) experimental.LinearMemory {
	if capacity > st.mem.limit {
		capacity = st.mem.limit
	}
	st.mem.capHint = capacity
	return &st.mem
}

// linearMemory is a task's linear memory. A growth past limit is refused (memory.grow gives
// -1) and recorded, so the task is out_of_memory whatever the guest does next.
//
// Small memories live on the Go heap (cheap to allocate, warm pages). A memory that grows past
// mmapAbove moves, once, into an anonymous mapping of the whole limit, reserved but committed
// only as touched: it then grows without copying and without weighing on the Go GC, and is
// unmapped when the instance closes.
type linearMemory struct {
	st      *runState
	buf     []byte
	image   *cowImage // a reactor's snapshot memory: the first allocation takes mapped from it (cow_linux.go)
	mapped  []byte    // the mapping, when the memory moved into one
	limit   uint64    // bytes
	capHint uint64
}

const mmapAbove = 16 << 20

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.limit || !m.charge(size) {
		m.st.hit(task.KindOutOfMemory, fmt.Sprintf("asked for %d pages (%.1f MiB) of memory, limit is %d MiB (memory_mb, tables included)",
			size>>16, float64(size)/(1<<20), m.st.limits.MemoryMB))
		return nil
	}
	if m.image != nil && m.buf == nil {
		return m.fromImage(size)
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size] // never written past the old length: still zero
		return m.buf
	}
	// Grow by a quarter at least (as append does): Go guests grow a few pages at a time.
	c := max(size, m.capHint, min(uint64(cap(m.buf))*5/4, m.limit))
	if c > mmapAbove && m.mapped == nil {
		if r := reserve(m.limit); r != nil {
			copy(r, m.buf)
			m.mapped = r
			m.buf = r[:size:m.limit]
			return m.buf
		}
	}
	b := make([]byte, size, c)
	copy(b, m.buf)
	m.buf = b
	return b
}

// fromImage is the first allocation of an instance of a reactor's snapshot: the image mapped
// copy-on-write at the start of a reservation of the whole limit, so growth copies nothing
// either; or, when mapping fails, the image read into a heap buffer.
func (m *linearMemory) fromImage(size uint64) []byte {
	img := m.image
	m.image = nil
	if size >= img.size {
		if r, err := img.take(m.limit); err == nil {
			m.mapped, m.image = r, img
			m.buf = r[:size:m.limit]
			return m.buf
		}
	}
	b := make([]byte, size, max(size, m.capHint))
	if err := img.readInto(b[:min(size, img.size)]); err != nil {
		m.st.hit(task.KindInternal, "could not set up the snapshot's memory: "+err.Error())
		return nil
	}
	m.buf = b
	return b
}

// Free drops the memory. wazero calls it when the instance closes; Run calls it again after
// the instance is closed, when no guest code can touch the memory any more.
func (m *linearMemory) Free() {
	switch {
	case m.mapped != nil && m.image != nil:
		m.image.give(m.mapped, uint64(len(m.buf)))
	case m.mapped != nil:
		unreserve(m.mapped)
	}
	m.mapped, m.image = nil, nil
	m.buf = nil
}
