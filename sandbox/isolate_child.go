package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"
)

// maxChildInput bounds what a child reads from stdin: more than any module the structural
// limits let through is not a module its parent sent.
const maxChildInput = 1 << 30

// ChildLimits are a compiling child's own limits, set first thing by SetChildLimits.
type ChildLimits struct {
	Memory  int64         // address space the compilation may add (RLIMIT_AS above the start), bytes
	Timeout time.Duration // CPU time (RLIMIT_CPU), rounded up to whole seconds
}

// SetChildLimits limits this process as a compiling child: RLIMIT_AS to the address space it
// holds now plus l.Memory, RLIMIT_CPU to l.Timeout's seconds, and a Go memory limit and
// maximum stack below that so that the runtime collects garbage before mappings start to
// fail. The limit is relative because a Go process starts with ~1 GiB of address space it
// reserved but never touches (thread stacks, heap arena hints): an absolute limit would be
// mostly that reservation and differ from one machine to the next.
func SetChildLimits(l ChildLimits) error {
	if l.Memory <= 0 || l.Timeout <= 0 {
		return fmt.Errorf("child limits must be positive: memory %d, timeout %v", l.Memory, l.Timeout)
	}
	base, err := addressSpace()
	if err != nil {
		return fmt.Errorf("reading the child's address space: %w", err)
	}
	if err := setRlimits(base+uint64(l.Memory), cpuSeconds(l.Timeout)); err != nil {
		return fmt.Errorf("setting the child's rlimits: %w", err)
	}
	debug.SetMemoryLimit(l.Memory / 2)
	debug.SetMaxStack(int(min(l.Memory/4, 256<<20)))
	return nil
}

// RunChild is the body of ChildCommand: it reads a module from stdin and loads it (validates,
// instruments and compiles it) with the configuration every Sandbox uses, into wazero's
// compilation cache at cacheDir, which must be set. A refusal of the module is a
// *ValidationError (errors.Is ErrInvalidModule); the caller exits with ChildExitRefused.
func RunChild(ctx context.Context, stdin io.Reader, cacheDir string) error {
	if cacheDir == "" {
		return errors.New("--cache-dir is required: the compiled code reaches the parent through it")
	}
	wasm, err := io.ReadAll(io.LimitReader(stdin, maxChildInput+1))
	if err != nil {
		return fmt.Errorf("reading the module: %w", err)
	}
	if len(wasm) > maxChildInput {
		return invalid("is larger than %d bytes", maxChildInput)
	}
	// Same Config as the parent's (minus isolation): the cache key covers the instrumented
	// bytes and the runtime's settings, so any difference would make the parent miss.
	s, err := New(ctx, Config{CacheDir: cacheDir})
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	_, err = s.Load(ctx, wasm)
	return err
}
