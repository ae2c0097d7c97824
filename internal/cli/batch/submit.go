package batch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"faas/client"
)

// This file is the middle of the pipeline: submitters send chunks, waiters long-poll the
// oldest outstanding task ids and file the terminal ones into their slots.

// submit sends chunks with ExecuteBatch and hands the task ids to the waiter.
func (r *runner) submit(ctx context.Context, chunks <-chan []item) error {
	sctx := ctx
	if r.cfg.SubmitContext != nil {
		sctx = r.cfg.SubmitContext
	}
	for batch := range chunks {
		if err := ctx.Err(); err != nil {
			return err // stopped: submit nothing more
		}
		inputs := make([][]byte, len(batch))
		for i, it := range batch {
			inputs[i] = it.input
		}
		ids, err := r.c.ExecuteBatch(sctx, r.fn, inputs)
		if err != nil {
			return fmt.Errorf("submitting inputs %d to %d: %w", batch[0].index, batch[len(batch)-1].index, err)
		}
		if len(ids) != len(batch) {
			return fmt.Errorf("submitting inputs %d to %d: the server returned %d task ids for %d inputs",
				batch[0].index, batch[len(batch)-1].index, len(ids), len(batch))
		}
		r.mu.Lock()
		for i, it := range batch {
			r.slots[it.index%len(r.slots)] = slot{taskID: ids[i]}
			r.byID[ids[i]] = it.index
			r.outstanding = append(r.outstanding, ids[i])
		}
		r.broadcastLocked()
		r.mu.Unlock()
	}
	return nil
}

// wait long-polls the oldest outstanding task ids that no other waiter is asking about, and
// files terminal tasks in their slots. Several waiters run at once, on disjoint ids.
func (r *runner) wait(ctx context.Context) error {
	failures := 0
	// Ask about twice as many ids as the last poll brought back: every id asked
	// about costs the server a record read, finished or not.
	ask := r.cfg.WaitIDs
	var last time.Time
	for {
		if gap := time.Since(last); gap < r.cfg.MinPollGap && ask < r.cfg.WaitIDs {
			select {
			case <-time.After(r.cfg.MinPollGap - gap):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		r.mu.Lock()
		var ids []string
		for _, id := range r.outstanding {
			if !r.claimed[id] {
				ids = append(ids, id)
				if len(ids) == ask {
					break
				}
			}
		}
		if len(ids) == 0 {
			if len(r.outstanding) == 0 && r.submitted {
				r.mu.Unlock()
				return nil
			}
			changed := r.changed
			r.mu.Unlock()
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for _, id := range ids {
			r.claimed[id] = true
		}
		r.mu.Unlock()

		last = time.Now()
		tasks, err := r.c.Wait(ctx, ids, r.cfg.Poll)
		r.file(ids, tasks)
		ask = min(max(2*len(tasks), 64), r.cfg.WaitIDs)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Waiting is idempotent: ride out a short outage before giving up.
			if failures < 5 && retryable(err) {
				failures++
				select {
				case <-time.After(time.Duration(100<<failures) * time.Millisecond):
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return fmt.Errorf("waiting for results: %w", err)
		}
		failures = 0
	}
}

// file releases a waiter's claim on ids and files the terminal tasks among tasks.
func (r *runner) file(ids []string, tasks []client.Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		delete(r.claimed, id)
	}
	n := 0
	for _, t := range tasks {
		if !t.Terminal() {
			continue
		}
		idx, ok := r.byID[t.TaskID]
		if !ok {
			continue
		}
		delete(r.byID, t.TaskID)
		t.Raw = nil // not printed; do not keep it
		r.slots[idx%len(r.slots)] = slot{taskID: t.TaskID, task: t, done: true}
		n++
	}
	if n > 0 {
		keep := r.outstanding[:0]
		for _, id := range r.outstanding {
			if _, ok := r.byID[id]; ok {
				keep = append(keep, id)
			}
		}
		clear(r.outstanding[len(keep):])
		r.outstanding = keep
		wake(r.printed)
	}
	r.broadcastLocked() // released ids (and maybe the last of them) for the other waiters
}

func retryable(err error) bool {
	if errors.Is(err, client.ErrUnreachable) {
		return true
	}
	var ae *client.APIError
	return errors.As(err, &ae) && (ae.StatusCode == http.StatusServiceUnavailable || ae.StatusCode >= 500)
}
