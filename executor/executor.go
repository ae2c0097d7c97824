// Package executor runs one task in the sandbox: the Executor every mode shares (the
// dispatcher's local pool, the remote pull and push workers). It fetches a module the first
// time a task needs it, from wherever the caller's ModuleSource finds it.
//
// It sits below both dispatch and worker, so that local mode needs no ZeroMQ.
package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"faas/sandbox"
	"faas/task"
)

// ModuleSource fetches a module's bytes by its hash: from Redis in local mode, from the
// dispatcher over the wire in remote modes.
type ModuleSource interface {
	Module(ctx context.Context, hash string) ([]byte, error)
}

// Executor runs one task at a time per call, in a fresh sandbox instance. It is safe for
// concurrent use; callers bound the concurrency.
type Executor struct {
	sb  *sandbox.Sandbox
	src ModuleSource
	id  string

	mu      sync.Mutex
	loading map[string]*loadCall // module hash → the fetch and compilation under way
}

// loadCall is one fetch and compilation of a module that every task needing it waits for.
type loadCall struct {
	done chan struct{}
	err  error
}

// New returns an executor that reports outcomes as run by id.
func New(sb *sandbox.Sandbox, src ModuleSource, id string) *Executor {
	return &Executor{sb: sb, src: src, id: id, loading: make(map[string]*loadCall)}
}

// ID is who the executor reports outcomes as run by.
func (e *Executor) ID() string { return e.id }

// ErrStopped is returned when the executor's context ended before the task could finish:
// the task did not fail, it was interrupted, and should be handed back rather than recorded.
var ErrStopped = errors.New("executor stopped")

// Execute runs t and returns its outcome. A task's own failure (trap, timeout, ...) is an
// outcome with a Failure; a module that cannot be fetched or compiled is an outcome of kind
// internal. The error is ErrStopped (wrapped) only when ctx ended first.
func (e *Executor) Execute(ctx context.Context, t task.Task) (task.Outcome, error) {
	out := task.Outcome{Ref: t.Ref(), Worker: e.id}
	res, err := e.sb.Run(ctx, t.ModuleHash, t.Name, t.Input, t.Limits)
	if errors.Is(err, sandbox.ErrNotLoaded) {
		if lerr := e.load(ctx, t.ModuleHash); lerr != nil {
			if ctx.Err() != nil {
				return out, fmt.Errorf("%w: %w", ErrStopped, ctx.Err())
			}
			out.Failure = &task.Failure{Kind: task.KindInternal, Message: lerr.Error()}
			return out, nil
		}
		res, err = e.sb.Run(ctx, t.ModuleHash, t.Name, t.Input, t.Limits)
	}
	if err != nil {
		if ctx.Err() != nil {
			return out, fmt.Errorf("%w: %w", ErrStopped, ctx.Err())
		}
		out.Failure = &task.Failure{Kind: task.KindInternal, Message: err.Error()}
		return out, nil
	}
	out.Stdout, out.Stderr, out.Failure, out.Duration, out.CPUUnits = res.Stdout, res.Stderr, res.Failure, res.Duration, res.CPUUnits
	return out, nil
}

// load fetches and compiles a module once however many tasks need it at once: the others
// wait for the first, so that a remote worker asks its dispatcher once per module (the
// dispatcher allows no more, dispatch/budget.go) and holds its bytes once, until compiled.
func (e *Executor) load(ctx context.Context, hash string) error {
	for {
		e.mu.Lock()
		c, busy := e.loading[hash]
		if !busy {
			c = &loadCall{done: make(chan struct{})}
			e.loading[hash] = c
			e.mu.Unlock()
			c.err = e.fetchAndLoad(ctx, hash)
			e.mu.Lock()
			delete(e.loading, hash)
			e.mu.Unlock()
			close(c.done)
			return c.err
		}
		e.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		// The first caller's own context ended: that is not this task's answer; try again.
		if c.err != nil && (errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) && ctx.Err() == nil {
			continue
		}
		return c.err
	}
}

func (e *Executor) fetchAndLoad(ctx context.Context, hash string) error {
	wasm, err := e.src.Module(ctx, hash)
	if err != nil {
		return fmt.Errorf("fetch module %s: %w", hash, err)
	}
	got, err := e.sb.Load(ctx, wasm)
	if err != nil {
		return fmt.Errorf("compile module %s: %w", hash, err)
	}
	if got != hash {
		return fmt.Errorf("module %s: received bytes hash to %s", hash, got)
	}
	return nil
}
