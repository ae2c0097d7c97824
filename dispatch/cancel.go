package dispatch

import (
	"context"
	"errors"
	"sync"
	"time"

	"faas/protocol"
	"faas/task"
)

// Cancelling running tasks. The store has already written the outcome (FAILED cancelled)
// and fenced off the running attempt; what is left here is freeing the slot at once:
// interrupting the sandbox instance in local mode, telling the worker in pull and push.
//
// Two paths bring a cancel here: the store's cancel channel (at once), and lease renewal,
// which reports the tasks no longer RUNNING at the attempt we hold (within LeaseTTL/4: it
// covers a cancel message lost while the subscription was down). Either way only tasks this
// dispatcher holds, at the attempt it holds, are stopped.
//
// A stopped task is reported like any other outcome, with kind cancelled: the mode's usual
// path frees the slot (a worker's RESULT_READY is what frees it in the hub's accounting),
// the core counts it once in the metrics, and the store ignores it (the task is no longer
// RUNNING), so the record written by the cancel stays.

// errCancelled is the cause of a task context ended because the task was cancelled.
var errCancelled = errors.New("task cancelled")

// stopper stops the given tasks wherever this dispatcher runs them; set by the mode.
type stopper func(refs []task.Ref)

// setStopper installs the mode's way of stopping tasks (before the mode claims anything).
func (c *core) setStopper(f stopper) { c.stop.Store(&f) }

// stopHeld stops the tasks of ids that this dispatcher holds, at the attempt it holds.
// attempts, when not nil, names the attempt each id must be held at (lease renewal asked
// about that one).
func (c *core) stopHeld(ids []string, attempts map[string]int) {
	f := c.stop.Load()
	if f == nil {
		return
	}
	refs := make([]task.Ref, 0, len(ids))
	c.mu.Lock()
	for _, id := range ids {
		h, ok := c.held[id]
		if !ok {
			continue
		}
		if a, named := attempts[id]; attempts != nil && (!named || a != h.attempt) {
			continue
		}
		refs = append(refs, task.Ref{ID: id, Attempt: h.attempt})
	}
	c.mu.Unlock()
	if len(refs) > 0 {
		c.log.Debug("stopping cancelled tasks", "tasks", len(refs))
		(*f)(refs)
	}
}

// listenCancels runs the subscription to the store's cancel channel until ctx ends.
func (c *core) listenCancels(ctx context.Context) {
	for ctx.Err() == nil {
		err := c.st.ListenCancels(ctx, func(ids []string) { c.stopHeld(ids, nil) })
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("listening for cancelled tasks failed; retrying", "err", err)
		sleep(ctx, time.Second)
	}
}

// cancelledOutcome is the outcome reported for a task stopped by a cancel.
func cancelledOutcome(r task.Ref, worker string, ran time.Duration) task.Outcome {
	return task.Outcome{Ref: r, Worker: worker, Duration: ran,
		Failure: &task.Failure{Kind: task.KindCancelled, Message: "cancelled while RUNNING"}}
}

// localRun is one task of local mode, from its claim to its end: its context is what a
// cancel ends.
type localRun struct {
	t    task.Task
	ctx  context.Context
	stop context.CancelCauseFunc
}

// localRuns are local mode's claimed tasks by id, so that a cancel finds them whether they
// wait for a slot or run.
type localRuns struct {
	mu   sync.Mutex
	runs map[string]localRun
}

func (l *localRuns) add(parent context.Context, t task.Task) localRun {
	ctx, stop := context.WithCancelCause(parent)
	r := localRun{t: t, ctx: ctx, stop: stop}
	l.mu.Lock()
	l.runs[t.ID] = r
	l.mu.Unlock()
	return r
}

// done forgets r and releases its context.
func (l *localRuns) done(r localRun) {
	l.mu.Lock()
	if cur, ok := l.runs[r.t.ID]; ok && cur.t.Attempt == r.t.Attempt {
		delete(l.runs, r.t.ID)
	}
	l.mu.Unlock()
	r.stop(nil)
}

// cancel is local mode's stopper.
func (l *localRuns) cancel(refs []task.Ref) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ref := range refs {
		if r, ok := l.runs[ref.ID]; ok && r.t.Attempt == ref.Attempt {
			r.stop(errCancelled)
		}
	}
}

// cancelRemote is the hub's handling of a stop: a task claimed but not yet sent (ready) is
// dropped and reported cancelled here, and each worker that was sent one of refs at that
// attempt (in this run, or in a previous run of the dispatcher, as its heartbeat says) is
// sent CANCEL with its own tasks, and no other.
func (h *hub) cancelRemote(refs []task.Ref) {
	want := make(map[string]int, len(refs))
	for _, r := range refs {
		want[r.ID] = r.Attempt
	}
	kept := h.ready[:0]
	for _, t := range h.ready {
		if a, ok := want[t.ID]; ok && a == t.Attempt {
			h.c.finish(cancelledOutcome(t.Ref(), "", 0)) // recorded already: a no-op in Redis
			continue
		}
		kept = append(kept, t)
	}
	clear(h.ready[len(kept):])
	h.ready = kept
	for _, w := range h.workers {
		var mine []task.Ref
		for id, f := range w.inflight {
			if a, ok := want[id]; ok && a == f.ref.Attempt {
				mine = append(mine, f.ref)
			}
		}
		for _, r := range w.foreigns {
			if a, ok := want[r.ID]; ok && a == r.Attempt {
				mine = append(mine, r)
			}
		}
		if len(mine) > 0 {
			h.log.Debug("cancelling tasks at a worker", "worker", w.id, "tasks", len(mine))
			h.send(w, protocol.Cancel{Refs: mine})
		}
	}
}
