package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Isolation makes a Sandbox compile every module first in a child process with an
// address-space and CPU-time limit: wazero's compiler is unbounded in memory and time and can
// die of a fatal error (stack overflow, out of memory) that no recover catches. The child,
// the same binary run as ChildCommand, writes the compiled code into wazero's on-disk
// compilation cache; the parent's own compile then reads it from there instead of compiling.
// A child that fails, dies or runs out refuses the module with a *ValidationError naming the
// limit; the parent never compiles a module its child could not.
type Isolation struct {
	Binary      string        // the faas binary; "" = this process's own executable
	Memory      int64         // a child's address-space limit (RLIMIT_AS), bytes; 0 = DefaultCompileMemory
	Timeout     time.Duration // a child's wall-clock limit, and its CPU seconds (rounded up); 0 = DefaultCompileTimeout
	Concurrency int           // children at once, the others queue; 0 = half the CPUs, at least 1
	Log         *slog.Logger  // children's failures and cache trims; nil = slog.Default()
}

// ChildCommand is the hidden subcommand of the faas binary that compiles one module (see
// RunChild); the parent runs Binary ChildCommand --cache-dir DIR --compile-memory BYTES
// --compile-timeout DURATION with the module on stdin.
const ChildCommand = "compile-module"

// Defaults of Isolation. Compiling samples/double/double_go.wasm (2.3 MB, the largest module
// a toolchain gave us) peaks at ~180 MB resident in the child and ~1.3 GB of address space
// (the Go runtime reserves more than it touches): 2 GiB leaves room for Go modules several
// times that size. 60 s is ~100x what that compilation takes.
const (
	DefaultCompileMemory  = 2 << 30
	DefaultCompileTimeout = 60 * time.Second
)

// ChildExitRefused is the exit code of a child that refused the module (its one line on
// stderr is the reason, worded for the uploader).
const ChildExitRefused = 65

// indexDir, in the cache directory, maps the sha256 of the bytes wazero compiles (after
// instrumentation) to the cache file the child wrote for them, so that a module compiled by
// an earlier process is not compiled again by a child.
const indexDir = "faas-index"

// isolator runs the children of one Sandbox.
type isolator struct {
	cfg    Isolation
	dir    string // the compilation cache directory shared with the children
	temp   bool   // dir is private to this Sandbox: Close removes it
	subdir string // where in dir this process's wazero keeps its cache
	sem    chan struct{}
}

func newIsolator(cfg Isolation, cacheDir string) (*isolator, error) {
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("sandbox: isolation: finding this executable: %w", err)
		}
		cfg.Binary = exe
	}
	if cfg.Memory <= 0 {
		cfg.Memory = DefaultCompileMemory
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultCompileTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = max(1, runtime.GOMAXPROCS(0)/2)
	}
	iso := &isolator{cfg: cfg, dir: cacheDir, subdir: wazeroCacheSubdir(), sem: make(chan struct{}, cfg.Concurrency)}
	if iso.dir == "" {
		// The child's result can only reach this process through an on-disk cache.
		d, err := os.MkdirTemp("", "faas-compile-cache-")
		if err != nil {
			return nil, fmt.Errorf("sandbox: isolation: private cache directory: %w", err)
		}
		iso.dir, iso.temp = d, true
	}
	return iso, nil
}

func (iso *isolator) close() {
	if iso != nil && iso.temp {
		_ = os.RemoveAll(iso.dir)
	}
}

// ensure makes sure the cache holds the compiled code of instrumented (whose original bytes
// are wasm), running a child unless an earlier one already did. It returns the size of the
// compiled code on disk, an estimate of what the compiled module holds in memory.
func (iso *isolator) ensure(ctx context.Context, hash string, wasm, instrumented []byte) (int64, error) {
	sum := sha256.Sum256(instrumented)
	key := hex.EncodeToString(sum[:])
	if n, ok := iso.cached(key); ok {
		iso.remember(hash, key)
		return n, nil
	}
	select {
	case iso.sem <- struct{}{}: // a queue, not a pile-up: the others wait here
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-iso.sem }()
	if n, ok := iso.cached(key); ok { // compiled by a child while this one queued
		iso.remember(hash, key)
		return n, nil
	}
	rel, size, err := iso.runChild(ctx, wasm)
	if err != nil {
		return 0, err
	}
	idx := filepath.Join(iso.dir, indexDir)
	if err := os.MkdirAll(idx, 0o700); err == nil {
		_ = os.WriteFile(filepath.Join(idx, key), []byte(rel), 0o600)
	}
	// Evict finds the cache file of a module by its hash through this entry (evict.go).
	iso.remember(hash, key)
	return size, nil
}

// cached reports whether the cache file for key is on disk, and marks it used (its mtime
// orders the on-disk LRU).
func (iso *isolator) cached(key string) (int64, bool) {
	rel, err := os.ReadFile(filepath.Join(iso.dir, indexDir, key))
	if err != nil || !validRel(string(rel)) {
		return 0, false
	}
	path := filepath.Join(iso.dir, string(rel))
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	now := time.Now()
	_ = os.Chtimes(path, now, now)
	return fi.Size(), true
}

// validRel accepts only what a child's cache can hold: one wazero-* directory and a file.
func validRel(rel string) bool {
	dir, file, ok := strings.Cut(rel, "/")
	return ok && strings.HasPrefix(dir, "wazero-") && file != "" && !strings.ContainsAny(file, "/\\") &&
		!strings.Contains(rel, "..")
}

// runChild compiles wasm in a child process writing into a fresh directory inside the cache
// directory, then moves the one file it wrote into the cache. It returns that file's path
// relative to the cache directory and its size.
func (iso *isolator) runChild(ctx context.Context, wasm []byte) (string, int64, error) {
	tmp, err := os.MkdirTemp(iso.dir, ".compile-")
	if err != nil {
		return "", 0, fmt.Errorf("sandbox: isolation: %w", err)
	}
	defer os.RemoveAll(tmp)
	cctx, cancel := context.WithTimeout(ctx, iso.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, iso.cfg.Binary, ChildCommand, "--cache-dir", tmp,
		"--compile-memory", strconv.FormatInt(iso.cfg.Memory, 10), "--compile-timeout", iso.cfg.Timeout.String())
	cmd.Stdin = bytes.NewReader(wasm)
	stderr := &headBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	// The child gets no environment: nothing of the parent's (API keys, Redis passwords)
	// reaches a process that handles hostile input. No traceback: only the fatal error's line.
	// One malloc arena: glibc reserves 64 MiB of address space per thread's arena otherwise,
	// which would make the address-space limit depend on how many threads ran.
	cmd.Env = []string{"GOTRACEBACK=none", "MALLOC_ARENA_MAX=1"}
	cmd.SysProcAttr = childProcAttr()
	cmd.WaitDelay = time.Second
	start := time.Now()
	runErr := cmd.Run()
	took := time.Since(start)
	if runErr != nil {
		if ctx.Err() != nil { // the client left, or the sandbox is closing: not the module's fault
			return "", 0, ctx.Err()
		}
		return "", 0, iso.refusal(cmd, runErr, cctx.Err() != nil, took, stderr.String())
	}
	rel, size, err := iso.adopt(tmp)
	if err != nil {
		return "", 0, fmt.Errorf("sandbox: isolation: %w", err)
	}
	iso.cfg.Log.Debug("module compiled in a child process", "took", took, "bytes", size)
	return rel, size, nil
}

// refusal words why a child did not compile the module, naming the limit it hit.
func (iso *isolator) refusal(cmd *exec.Cmd, runErr error, wallTimeout bool, took time.Duration, stderr string) error {
	line := firstLine(stderr)
	var cpu time.Duration
	if ps := cmd.ProcessState; ps != nil {
		cpu = ps.UserTime() + ps.SystemTime()
	}
	var ee *exec.ExitError
	exited := errors.As(runErr, &ee) && ee.Exited()
	cpuSecs := cpuSeconds(iso.cfg.Timeout)
	switch {
	case exited && ee.ExitCode() == ChildExitRefused && line != "":
		return &ValidationError{Reason: strings.TrimPrefix(line, "invalid module: ")}
	case wallTimeout:
		return invalid("could not be compiled within the compile timeout of %v (--compile-timeout)", iso.cfg.Timeout)
	case cpu >= time.Duration(cpuSecs)*time.Second:
		return invalid("could not be compiled within the compile CPU limit of %d s (--compile-timeout %v; used %.1f s)", cpuSecs, iso.cfg.Timeout, cpu.Seconds())
	case strings.Contains(stderr, "out of memory") || strings.Contains(stderr, "cannot allocate memory") ||
		strings.Contains(stderr, "pthread_create failed"): // a thread stack is address space too
		return invalid("could not be compiled within the compile memory limit of %d MiB (--compile-memory)", iso.cfg.Memory>>20)
	case strings.Contains(stderr, "stack overflow") || strings.Contains(stderr, "stack exceeds"):
		return invalid("could not be compiled: the compiler overflowed its stack (nesting too deep)")
	}
	iso.cfg.Log.Warn("compilation child failed", "err", runErr, "took", took, "stderr", line)
	return invalid("could not be compiled: the compiler process failed (%v: %s); limits: --compile-memory %d MiB, --compile-timeout %v",
		runErr, line, iso.cfg.Memory>>20, iso.cfg.Timeout)
}

// adopt moves the one cache file a child wrote under tmp into the cache directory.
func (iso *isolator) adopt(tmp string) (string, int64, error) {
	var found []string
	err := filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !strings.HasSuffix(p, ".tmp") {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	if len(found) != 1 {
		return "", 0, fmt.Errorf("the compiling child left %d cache files, want 1", len(found))
	}
	rel, err := filepath.Rel(tmp, found[0])
	if err != nil || !validRel(filepath.ToSlash(rel)) {
		return "", 0, fmt.Errorf("the compiling child wrote an unexpected file %q", rel)
	}
	// A child built with another wazero writes where this process never reads: it would
	// then compile every module itself, unbounded. Refuse to go on instead.
	if sub, _, _ := strings.Cut(filepath.ToSlash(rel), "/"); sub != iso.subdir {
		return "", 0, fmt.Errorf("the compiling child (%s) writes its cache for another wazero build (%s, this process reads %s)",
			iso.cfg.Binary, sub, iso.subdir)
	}
	dst := filepath.Join(iso.dir, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", 0, err
	}
	if err := os.Rename(found[0], dst); err != nil {
		return "", 0, err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return "", 0, err
	}
	return filepath.ToSlash(rel), fi.Size(), nil
}

// wazeroCacheSubdir is the directory wazero.NewCompilationCacheWithDir uses inside the cache
// directory: wazero-VERSION-GOARCH-GOOS, VERSION being wazero's module version in this
// binary's build information, "dev" without one (test binaries).
func wazeroCacheSubdir() string {
	v := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/tetratelabs/wazero" {
				v = dep.Version
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	return "wazero-" + v + "-" + runtime.GOARCH + "-" + runtime.GOOS
}

func cpuSeconds(d time.Duration) uint64 {
	return uint64((d + time.Second - 1) / time.Second)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// headBuffer keeps the first max bytes written to it: enough for a child's one line or a
// fatal error's, never a flood.
type headBuffer struct {
	max int
	buf bytes.Buffer
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *headBuffer) String() string { return b.buf.String() }

// DefaultMaxCompiledBytes bounds the in-memory compiled modules when Config.MaxCompiledBytes
// is 0.
const DefaultMaxCompiledBytes = 1 << 30

// codePerWasmByte estimates the machine code wazero makes of one byte of Wasm, for modules
// whose compiled size the Sandbox has not seen on disk (measured on the samples: double_go
// 2.3 MB -> 7.4 MB of cache file, about 3.2x).
const codePerWasmByte = 4

// setupStorage prepares isolation and the cache bounds of cfg on s; it may set cfg.CacheDir
// (isolation needs an on-disk cache: a private one when none is configured).
func (s *Sandbox) setupStorage(cfg *Config) error {
	s.maxBytes = cfg.MaxCompiledBytes
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxCompiledBytes
	}
	if cfg.Isolate != nil {
		iso, err := newIsolator(*cfg.Isolate, cfg.CacheDir)
		if err != nil {
			return err
		}
		s.iso, cfg.CacheDir = iso, iso.dir
	}
	if cfg.CacheDir != "" {
		max := cfg.CacheMaxBytes
		if max <= 0 {
			max = DefaultCacheMaxBytes
		}
		s.disk = &diskCache{dir: cfg.CacheDir, max: max, log: slog.Default()}
		if cfg.Isolate != nil && cfg.Isolate.Log != nil {
			s.disk.log = cfg.Isolate.Log
		}
	}
	return nil
}

// beforeCompile runs just before the Sandbox compiles instrumented (made of wasm, of hash): with
// isolation, a child compiles it first into the on-disk cache, or refuses it. It returns an
// estimate of the bytes the compiled module will hold in memory.
func (s *Sandbox) beforeCompile(ctx context.Context, hash string, wasm, instrumented []byte) (int64, error) {
	defer s.disk.trimSoon()
	code := int64(len(instrumented)) * codePerWasmByte
	if s.iso != nil {
		n, err := s.iso.ensure(ctx, hash, wasm, instrumented)
		if err != nil {
			return 0, err
		}
		code = n
	}
	// wazero keeps the module's bytes (its decoded functions point into them) beside the code.
	return int64(len(instrumented)) + code, nil
}
