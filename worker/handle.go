package worker

// This file: what the worker does with the dispatcher's messages and with the events of its
// own task goroutines.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/task"
)

// receiveAll reads and handles every message waiting on s (the control socket if ctrl, else
// the REQ socket).
func (w *worker) receiveAll(runCtx context.Context, s *zmq.Socket, ctrl bool) {
	for i := 0; i < 1024; i++ {
		frames, err := s.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if !zsock.IsAgain(err) {
				w.log.Error("receive failed", "err", err)
			}
			return
		}
		if ctrl {
			if len(frames) == 0 || len(frames[0]) != 0 {
				w.log.Warn("dropping a message without its delimiter", "frames", len(frames))
				continue
			}
			frames = frames[1:]
		}
		m, err := protocol.Decode(frames)
		if err != nil {
			w.log.Warn("dropping a malformed message", "err", err)
			if !ctrl {
				w.asking = false
			}
			continue
		}
		w.lastHeard = time.Now()
		w.handle(runCtx, m, ctrl)
		if !ctrl {
			return // a REQ socket holds one reply at a time
		}
	}
}

func (w *worker) handle(runCtx context.Context, m protocol.Message, ctrl bool) {
	if !ctrl {
		w.asking = false
	}
	switch m := m.(type) {
	case protocol.Ack:
		w.acked(m)
	case protocol.NewTask:
		w.start(runCtx, m.Tasks)
	case protocol.NoTask:
		w.askAfter = time.Now().Add(w.hbEvery)
	case protocol.Heartbeat:
		if ctrl {
			// Echoed in our next heartbeat: proof that we read what came before it (the
			// dispatcher's budget of module bytes it queued to us).
			w.token = m.Token
		}
	case protocol.Cancel:
		w.cancel(m.Refs)
	case protocol.Module:
		w.moduleArrived(m)
	case protocol.Evict:
		if ctrl { // from the dispatcher's ROUTER; the REQ socket only carries replies to REQUEST_TASK
			w.evict(m.Hashes)
		}
	case protocol.Bye:
		if w.stopping {
			// The answer to our BYE: nothing more is on its way. Stay registered, so
			// heartbeats go on while running tasks finish.
			w.byeAcked = true
			return
		}
		w.log.Info("dispatcher is stopping; will register again when it returns")
		w.registered = false
	case protocol.Error:
		switch m.Code {
		case protocol.CodeUnauthorized:
			w.fatal = fmt.Errorf("%w: %s", ErrRefused, m.Text)
			w.log.Error("the dispatcher no longer accepts this worker's key; stopping", "text", m.Text)
		case protocol.CodeWrongMode:
			w.fatal = fmt.Errorf("%w: %s", ErrWrongMode, m.Text)
			w.log.Error("the dispatcher runs the other mode; stopping", "text", m.Text)
		case protocol.CodeUnknownWorker:
			w.log.Info("dispatcher does not know this worker; registering again")
			w.registered = false
			w.register()
		default:
			w.log.Error("dispatcher refused a message", "code", m.Code, "text", m.Text)
			w.askAfter = time.Now().Add(w.hbEvery)
		}
	default:
		w.log.Warn("dropping an unexpected message", "type", m.Type())
	}
}

// acked takes the dispatcher's ACK of our registration.
func (w *worker) acked(m protocol.Ack) {
	// A second ACK of the same session (we registered twice before the first came back)
	// changes nothing: in particular a held request stays held.
	fresh := !w.registered || m.Session != w.session
	w.registered, w.session = true, m.Session
	if m.HeartbeatInterval > 0 {
		w.hbEvery = m.HeartbeatInterval
	}
	if m.HeartbeatTimeout > 0 {
		w.hbDead = m.HeartbeatTimeout
	}
	if !fresh {
		return
	}
	w.log.Info("registered", "session", m.Session)
	w.askAfter = time.Time{}
	// A request held by a dispatcher that went away gets no answer; ask again
	// (REQ_RELAXED allows it; REQ_CORRELATE drops a stale reply to the old one).
	w.asking = false
	// The tasks we hold first (one connection keeps order): a dispatcher that restarted
	// serves a module only for tasks it knows were sent to us.
	if len(w.asked) > 0 {
		w.beat(time.Now())
	}
	for hash := range w.asked {
		w.askModule(hash)
	}
}

// moduleArrived hands a module (or the dispatcher's reason for not having it) to every
// executor waiting for it.
func (w *worker) moduleArrived(m protocol.Module) {
	if strings.HasPrefix(m.Err, protocol.ModuleRetryLater) {
		// Over the dispatcher's allowance (our earlier answer was lost, or the budget of the
		// window is spent): the tasks keep waiting and we ask again after the window.
		if _, asked := w.asked[m.Hash]; asked {
			w.log.Warn("dispatcher asks to fetch a module later", "hash", m.Hash, "text", m.Err)
			w.asked[m.Hash] = time.Now().Add(moduleRetryAfter)
		}
		return
	}
	delete(w.asked, m.Hash)
	w.mu.Lock()
	waiters := w.waiters[m.Hash]
	delete(w.waiters, m.Hash)
	w.mu.Unlock()
	r := moduleResult{wasm: m.Wasm}
	if m.Err != "" {
		r = moduleResult{err: fmt.Errorf("dispatcher: %s", m.Err)}
	}
	for _, ch := range waiters {
		ch <- r
	}
}

// start runs tasks in their own goroutines, or queues them (Config.Queue) when every slot
// is taken; tasks beyond the free slots and the queue, or sent while stopping, are handed
// back.
func (w *worker) start(runCtx context.Context, ts []task.Task) {
	var back []task.Ref
	for _, t := range ts {
		_, dup := w.running[t.ID]
		switch {
		case dup || w.isQueued(t.ID) || w.stopping:
			// dup: a new attempt of a task whose previous attempt is still here (the
			// dispatcher gave up on it); the old attempt's result will be fenced off.
			back = append(back, t.Ref())
		case len(w.running) < w.cfg.Slots:
			w.runTask(runCtx, t)
		case len(w.queued) < w.cfg.Queue:
			w.queued = append(w.queued, t)
		default:
			back = append(back, t.Ref())
		}
	}
	if len(back) > 0 {
		w.log.Warn("handing back tasks beyond capacity", "tasks", len(back))
		w.send(protocol.Release{Worker: w.cfg.ID, Refs: back})
	}
}

// startQueued starts queued tasks while slots are free.
func (w *worker) startQueued(runCtx context.Context) {
	for len(w.queued) > 0 && len(w.running) < w.cfg.Slots && !w.stopping {
		t := w.queued[0]
		w.queued[0] = task.Task{}
		w.queued = w.queued[1:]
		w.runTask(runCtx, t)
	}
}

func (w *worker) isQueued(id string) bool {
	for _, q := range w.queued {
		if q.ID == id {
			return true
		}
	}
	return false
}

// held is what the worker holds: its running and queued tasks.
func (w *worker) held() []task.Ref {
	held := make([]task.Ref, 0, len(w.running)+len(w.queued))
	for _, r := range w.running {
		held = append(held, r)
	}
	for _, t := range w.queued {
		held = append(held, t.Ref())
	}
	return held
}

// runTask runs t in its own goroutine; its outcome (or hand-back) comes back as an event.
func (w *worker) runTask(runCtx context.Context, t task.Task) {
	w.running[t.ID] = t.Ref()
	tctx, stop := context.WithCancelCause(runCtx)
	w.stops[t.ID] = stop
	w.tasks.Add(1)
	go func() {
		defer w.tasks.Done()
		start := time.Now()
		out, err := w.ex.Execute(tctx, t)
		if err != nil && errors.Is(context.Cause(tctx), errCancelled) {
			out = task.Outcome{Ref: t.Ref(), Worker: w.ex.ID(), Duration: time.Since(start),
				Failure: &task.Failure{Kind: task.KindCancelled, Message: "cancelled while RUNNING"}}
		} else if err != nil {
			w.box.Put(event{kind: evStopped, ref: t.Ref()})
			return
		}
		w.box.Put(event{kind: evOutcome, outcome: out})
	}()
}

// handleEvents sends the outcomes and hand-backs of one batch of events; it reports whether
// a stop was asked.
func (w *worker) handleEvents(runCtx context.Context, events []event) (stop bool) {
	defer w.startQueued(runCtx) // into the slots the ended tasks freed
	var outs []task.Outcome
	var back []task.Ref
	for _, e := range events {
		switch e.kind {
		case evOutcome:
			w.finished(e.outcome.Ref)
			outs = append(outs, e.outcome)
		case evStopped:
			w.finished(e.ref)
			back = append(back, e.ref)
		case evModule:
			w.askModule(e.hash)
		case evStop:
			stop = true
		}
	}
	for len(outs) > 0 {
		n := fitOutcomes(outs)
		w.send(protocol.ResultReady{Worker: w.cfg.ID, Outcomes: outs[:n]})
		outs = outs[n:]
	}
	if len(back) > 0 {
		w.send(protocol.Release{Worker: w.cfg.ID, Refs: back})
	}
	return stop
}

// errCancelled is the cause of a task context ended by the dispatcher's CANCEL.
var errCancelled = errors.New("task cancelled by the dispatcher")

// cancel stops the tasks of refs that run here at that attempt; the others (finished
// already, or never sent here) are ignored. A stopped task reports an outcome of kind
// cancelled, which frees its slot at the dispatcher too.
func (w *worker) cancel(refs []task.Ref) {
	for _, r := range refs {
		if w.running[r.ID] == r {
			if stop := w.stops[r.ID]; stop != nil {
				stop(errCancelled)
			}
		}
	}
	// A queued task never starts: its outcome is sent with the next events.
	kept := w.queued[:0]
	for _, t := range w.queued {
		if slices.Contains(refs, t.Ref()) {
			w.box.Put(event{kind: evOutcome, outcome: task.Outcome{Ref: t.Ref(), Worker: w.ex.ID(),
				Failure: &task.Failure{Kind: task.KindCancelled, Message: "cancelled while RUNNING"}}})
			continue
		}
		kept = append(kept, t)
	}
	clear(w.queued[len(kept):])
	w.queued = kept
}

// finished forgets a task that ended (its outcome or hand-back is being sent).
func (w *worker) finished(r task.Ref) {
	if w.running[r.ID] != r {
		return // a previous attempt's end: the current one still runs
	}
	delete(w.running, r.ID)
	if stop := w.stops[r.ID]; stop != nil {
		stop(nil) // releases the context
		delete(w.stops, r.ID)
	}
}

// fitOutcomes returns how many outcomes (at least one) fit in one RESULT_READY under the
// dispatcher's message bound (protocol.MaxMessageBytes).
func fitOutcomes(outs []task.Outcome) int {
	size := 0
	for i, o := range outs {
		size += len(o.Stdout) + len(o.Stderr) + len(o.ID) + 1<<10
		if o.Failure != nil {
			size += len(o.Failure.Message)
		}
		if size > protocol.MaxMessageBytes && i > 0 {
			return i
		}
	}
	return len(outs)
}

// evict drops deleted modules from the sandbox, in memory and on disk (a task of one that
// runs now finishes). A hash the worker does not hold is no error; one that is not a hash is
// logged and skipped.
func (w *worker) evict(hashes []string) {
	ctx, cancel := context.WithTimeout(context.Background(), evictTimeout)
	defer cancel()
	for _, h := range hashes {
		if err := w.sb.Evict(ctx, h); err != nil {
			w.log.Warn("evicting a deleted module failed", "hash", h, "err", err)
			continue
		}
		w.log.Debug("deleted module evicted", "hash", h)
	}
}

// moduleRetryAfter is how long the worker waits before asking again for a module the
// dispatcher refused for its allowance: the dispatcher's window (a variable for tests).
var moduleRetryAfter = protocol.ModuleWindow

// evictTimeout bounds the evictions of one EVICT (closing compiled modules, removing files).
const evictTimeout = 5 * time.Second
