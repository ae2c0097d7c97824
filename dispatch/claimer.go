package dispatch

import (
	"context"
	"sync"
	"time"

	"faas/task"
)

// This file holds the claimer, which takes tasks from the queue only as fast as the workers
// can take them, and what it shares with the hub: the demand it serves, the count of tasks
// in transit, and the hub's ready list of claimed tasks no worker has taken yet.

// claimTimeout bounds one claim's wait on Redis.
const claimTimeout = 2 * time.Second

// readyHold is how long claimed tasks nobody asked for (a worker vanished while they were
// being claimed) wait for another worker before going back to the queue.
const readyHold = time.Second

// demand is how many tasks the hub wants claimed. The hub adds and cancels; the claimer
// subtracts what it claimed. It never goes below zero: tasks claimed for a cancelled want
// wait in the hub's ready list for the next worker.
type demand struct {
	mu   sync.Mutex
	n    int
	kick chan struct{}
}

func (d *demand) add(k int) {
	if k == 0 {
		return
	}
	d.mu.Lock()
	d.n = max(0, d.n+k)
	d.mu.Unlock()
	if k > 0 {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

func (d *demand) get() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// claimer takes tasks from the queue as the hub wants them, never more. It runs in a
// goroutine of its own until ctx ends, and hands what it claims to the hub's mailbox.
func (h *hub) claimer(ctx context.Context) {
	idle := false // the queue was empty at the last claim
	poll := time.NewTicker(h.cfg.Poll)
	defer poll.Stop()
	backoff := 50 * time.Millisecond
	for {
		if n := min(h.demand.get(), h.cfg.ClaimBatch); n > 0 && !idle && ctx.Err() == nil {
			// Not cancelled by ctx: a claim cut short after Redis ran it would strand its
			// tasks until their leases expire. Bounded, so that a stop during a Redis outage
			// still ends within DrainTimeout plus this.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
			ts, err := h.c.claim(cctx, n)
			cancel()
			if err != nil {
				h.log.Warn("claiming tasks failed; retrying", "err", err, "backoff", backoff)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			backoff = 50 * time.Millisecond
			if len(ts) > 0 {
				// transit first: the hub may count a task twice for a moment, never zero times.
				h.transit.Add(int64(len(ts)))
				h.demand.add(-len(ts))
				h.box.Put(hubEvent{tasks: ts})
			}
			idle = len(ts) < n
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-h.demand.kick:
			idle = false
		case <-h.c.woken():
			idle = false
		case <-poll.C:
			idle = false
		}
	}
}

// order asks the claimer for n more tasks (n < 0: fewer).
func (h *hub) order(n int) {
	if !h.stopping {
		h.demand.add(n)
	}
}

// keepReady holds claimed tasks no worker can take right now.
func (h *hub) keepReady(ts []task.Task) {
	if len(ts) == 0 {
		return
	}
	if len(h.ready) == 0 {
		h.readyAt = time.Now()
	}
	h.ready = append(h.ready, ts...)
}

// takeReady removes up to n tasks from ready.
func (h *hub) takeReady(n int) []task.Task {
	n = min(n, len(h.ready))
	if n == 0 {
		return nil
	}
	ts := make([]task.Task, n)
	copy(ts, h.ready)
	rest := copy(h.ready, h.ready[n:])
	clear(h.ready[rest:])
	h.ready = h.ready[:rest]
	return ts
}

// releaseReady hands every ready task back to the queue, uncharged.
func (h *hub) releaseReady() {
	for _, t := range h.ready {
		h.c.release(t.Ref())
	}
	clear(h.ready)
	h.ready = h.ready[:0]
}
