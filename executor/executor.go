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
}

// New returns an executor that reports outcomes as run by id.
func New(sb *sandbox.Sandbox, src ModuleSource, id string) *Executor {
	return &Executor{sb: sb, src: src, id: id}
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

func (e *Executor) load(ctx context.Context, hash string) error {
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
