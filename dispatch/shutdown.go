package dispatch

import (
	"context"
	"time"

	"faas/internal/zsock"
	"faas/protocol"
)

// This file holds the hub's shutdown: one function whose steps run in the order they must.

// closeLinger is how long closing the ROUTER may wait for the last messages to leave.
const closeLinger = 500 * time.Millisecond

// shutdown stops the hub once ctx has ended. The order is the point:
//
//  1. Stop claiming first: every task claimed from now on would only be handed back.
//  2. Then tell the workers BYE (and answer held pull requests with NO_TASK): they stop
//     asking for work, finish what they run and send the results. Tasks claimed and not yet
//     sent go back to the queue at once, uncharged.
//  3. Drain: keep serving the workers (results, releases, heartbeats, BYE) until every task
//     they hold is back and the claimer has returned, or DrainTimeout has passed. Workers
//     that register again hear BYE; silent ones are still declared lost.
//  4. Hand back, uncharged, what is still out: tasks a late claim brought (the claimer's
//     last claim may outlive ctx by claimTimeout, so wait for it), and the tasks workers
//     still hold: they were interrupted by this stop, not lost by their worker.
//  5. Stop the module fetches and wait for them: they post to the mailbox.
//  6. Close the mailbox, then the ROUTER with a linger, so the BYEs and last replies queued
//     in it still leave.
//  7. Terminate the ZeroMQ context last: it waits (bounded) until those messages are sent,
//     and frees the port before Run returns.
func (h *hub) shutdown(stopClaiming context.CancelFunc, claimerDone <-chan struct{}) {
	// 1.
	h.stopping = true
	stopClaiming()
	deadline := time.Now().Add(h.cfg.DrainTimeout)

	// 2.
	h.log.Info("stopping: no new work; waiting for results", "tasks", h.inflight(), "workers", len(h.workers))
	h.hooks.stop()
	for _, w := range h.workers {
		h.send(w, protocol.Bye{Sender: h.session})
	}
	h.releaseReady()

	// 3.
	h.drain(deadline, claimerDone)

	// 4.
	<-claimerDone
	for _, e := range h.box.Take(nil) {
		if len(e.tasks) > 0 {
			h.ready = append(h.ready, e.tasks...)
		}
	}
	h.releaseReady()
	for _, w := range h.workers {
		for _, f := range w.inflight {
			h.c.release(f.ref)
		}
		w.inflight = nil
	}

	// 5.
	h.stopFetches()
	h.fetches.Wait()

	// 6.
	h.box.Close()
	h.router.SetLinger(closeLinger)
	h.router.Close()
	if h.zap != nil {
		h.zap.Close() // after the router: with no handler bound, libzmq lets any key in
	}

	// 7.
	zsock.Terminate(h.zctx, time.Second)
}

// drain keeps the hub loop turning, briskly, until the workers hold no task we sent and the
// claimer has returned, or until deadline.
func (h *hub) drain(deadline time.Time, claimerDone <-chan struct{}) {
	for {
		select {
		case <-claimerDone:
			if h.inflight() == 0 {
				return
			}
		default:
		}
		if time.Now().After(deadline) {
			h.log.Warn("workers did not return results in time; handing their tasks back", "tasks", h.inflight())
			return
		}
		h.turn(min(zsock.Until(h.nextCheck, time.Second), 50*time.Millisecond))
	}
}
