package worker

// This file: the stop sequence a worker runs once its ctx has ended (docs/PROTOCOL.md
// "Shutdown").

import (
	"context"
	"errors"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/task"
)

const (
	// answerTimeout bounds the wait for the dispatcher's answer to our BYE.
	answerTimeout = time.Second
	// drainTimeout bounds how long a stopping worker lets running tasks finish before
	// interrupting them and handing them back; with the final flush it stays under 8s.
	drainTimeout = 7 * time.Second
	// releaseTimeout bounds the wait for interrupted tasks to return, so that they can be
	// handed back.
	releaseTimeout = time.Second
	// closeLinger is how long closing the sockets may wait for the last messages to leave.
	closeLinger = 500 * time.Millisecond
	// stopTick is how often a stopping worker looks at its deadlines.
	stopTick = 100 * time.Millisecond
)

// stop shuts the worker down, one step after the other. Until the sockets close, every wait
// also keeps heartbeating, handles the dispatcher's messages and sends the results of tasks
// that finish. Both bounds count from the start of the stop, so that waiting for the
// dispatcher's answer does not lengthen the shutdown (≤ 8s in all).
func (w *worker) stop(runCtx context.Context, poller *zmq.Poller, interrupt context.CancelFunc, zctx *zmq.Context) {
	start := time.Now()
	w.sayBye()
	w.awaitByeAnswer(runCtx, poller, start.Add(answerTimeout))
	if !w.drainRunning(runCtx, poller, start.Add(drainTimeout)) {
		w.interruptRunning(interrupt)
		w.releaseInterrupted(runCtx, poller, time.Now().Add(releaseTimeout))
	}
	w.sayFinalBye()
	w.closeSockets()
	w.awaitTaskGoroutines(interrupt, time.Second)
	w.log.Info("worker stopped")
	w.box.Close()
	zsock.Terminate(zctx, 2*closeLinger)
}

// sayBye comes first: from here on a NEW_TASK is handed back uncharged and no REQUEST_TASK
// goes out, and the BYE is what makes the dispatcher stop sending work (push) and answer a
// held request NO_TASK (pull), which the next step waits for.
func (w *worker) sayBye() {
	w.stopping = true
	w.log.Info("stopping: finishing running tasks", "tasks", len(w.running))
	w.send(protocol.Bye{Sender: w.cfg.ID})
	if len(w.queued) > 0 { // not started: back to the queue, uncharged
		refs := make([]task.Ref, len(w.queued))
		for i, t := range w.queued {
			refs[i] = t.Ref()
		}
		w.queued = nil
		w.send(protocol.Release{Worker: w.cfg.ID, Refs: refs})
	}
}

// awaitByeAnswer waits until the dispatcher has answered our BYE (push: with BYE on this
// connection, after any NEW_TASK it sent before reading ours; pull: NO_TASK to a held
// request). Tasks still on their way when we stopped arrive meanwhile and are handed back
// uncharged, rather than lost with the connection and charged an attempt. A dispatcher that
// is gone (not registered) is not waited for.
func (w *worker) awaitByeAnswer(runCtx context.Context, poller *zmq.Poller, deadline time.Time) {
	w.waitUntil(runCtx, poller, deadline, func() bool {
		awaiting := w.asking || w.cfg.Mode == protocol.ModePush && !w.byeAcked
		return !awaiting || !w.registered
	})
}

// drainRunning lets running tasks finish and report their results, until deadline. Only now,
// with no more work on its way, is the set of running tasks final. It reports whether all
// finished.
func (w *worker) drainRunning(runCtx context.Context, poller *zmq.Poller, deadline time.Time) bool {
	return w.waitUntil(runCtx, poller, deadline, func() bool { return len(w.running) == 0 })
}

// interruptRunning cancels the tasks that did not finish in time; each comes back as an
// evStopped event.
func (w *worker) interruptRunning(interrupt context.CancelFunc) {
	w.log.Warn("running tasks did not finish in time; interrupting and handing them back", "tasks", len(w.running))
	interrupt()
}

// releaseInterrupted waits (until deadline) for the interrupted tasks to come back and hands
// them back with RELEASE (uncharged) while the socket is still open. Those that do not come
// back are re-run by the dispatcher once it notices this worker is gone.
func (w *worker) releaseInterrupted(runCtx context.Context, poller *zmq.Poller, deadline time.Time) {
	if !w.waitUntil(runCtx, poller, deadline, func() bool { return len(w.running) == 0 }) {
		w.log.Error("tasks still held at exit; the dispatcher will re-run them", "tasks", len(w.running))
	}
}

// sayFinalBye tells the dispatcher, once everything is reported, that we are gone, so it
// need not wait for missed heartbeats; it also makes up for a first BYE that was dropped (or
// that reached a dispatcher we registered with again since).
func (w *worker) sayFinalBye() {
	w.send(protocol.Bye{Sender: w.cfg.ID})
}

// closeSockets closes the sockets, letting the control socket's last messages (results,
// hand-backs, BYE) leave for up to closeLinger.
func (w *worker) closeSockets() {
	linger := closeLinger
	if errors.Is(w.fatal, ErrNoDispatcher) {
		linger = 0 // nobody answered: what is queued would only be waited for in vain
	}
	w.ctrl.SetLinger(linger)
	w.ctrl.Close()
	if w.req != nil {
		w.req.Close()
	}
	w.monitor.Close()
}

// awaitTaskGoroutines cancels whatever still runs and waits (up to max) for the task
// goroutines to return, so that none is still in the sandbox when Run returns.
func (w *worker) awaitTaskGoroutines(interrupt context.CancelFunc, max time.Duration) {
	interrupt()
	done := make(chan struct{})
	go func() { w.tasks.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(max):
	}
}

// waitUntil keeps the worker going (heartbeats, messages, events) until done reports true,
// then returns true, or until deadline has passed, then returns false.
func (w *worker) waitUntil(runCtx context.Context, poller *zmq.Poller, deadline time.Time, done func() bool) bool {
	for {
		now := w.keepAlive()
		if done() {
			return true
		}
		if now.After(deadline) {
			return false
		}
		w.pump(runCtx, poller, stopTick)
	}
}
