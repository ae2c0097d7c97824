package dispatch

import (
	"fmt"
	"time"

	"faas/protocol"
	"faas/task"
)

// This file holds the hub's registry of workers: registration, what each one holds,
// heartbeats and the detection of lost workers.

// flight is a task a worker holds, as the dispatcher sent it.
type flight struct {
	ref    task.Ref
	seq    int // the worker's taskSeq when sent on its control connection (0: on its REQ socket)
	sentAt time.Time
	module string      // its module: the worker may ask for it
	limits task.Limits // what its outcome may hold
}

// remoteWorker is the registry entry of one worker: one DEALER connection (its routing id
// is the registry's key), of one key.
type remoteWorker struct {
	id        string // the name it gave: a label for logs and task records, not an identity
	key       string // its CURVE key ("" without CURVE)
	via       string // its connection's name in the store (see via)
	route     []byte // ROUTER identity of the worker's control (DEALER) socket
	capacity  int
	inflight  map[string]flight // task id → the attempt we sent it
	foreign   int               // tasks it runs that we did not send (from before a restart)
	foreigns  []task.Ref        // those tasks, as its last heartbeat listed them
	lastHeard time.Time
	done      int64        // outcomes received from it (the live registry shows them)
	leaving   bool         // said BYE: send it nothing more
	held      *heldRequest // pull mode: its REQUEST_TASK awaiting tasks
	// What it was sent of modules (budget.go): answers per module in the current window,
	// bytes not acknowledged, the heartbeat tokens sent since the last module, the count of
	// NEW_TASKs sent on its control connection, and that count when the last module went.
	modulesSent map[string]moduleAnswers
	unacked     int
	tokens      []string
	taskSeq     int
	moduleSeq   int
	retryUntil  time.Time // registered again on this connection: one more answer per module until then
}

// maxCapacity bounds the slots one registration may claim: a worker asking for more is
// given this many, so that one registration cannot have the dispatcher claim the queue.
const maxCapacity = 1024

func (w *remoteWorker) load() int { return len(w.inflight) + w.foreign }

// inflight counts the tasks workers hold that we sent them.
func (h *hub) inflight() int {
	n := 0
	for _, w := range h.workers {
		n += len(w.inflight)
	}
	return n
}

func (w *remoteWorker) peer() peer { return peer{key: w.key, route: w.route} }

// hasModule reports whether w was sent a task of module hash.
func (w *remoteWorker) hasModule(hash string) bool {
	for _, f := range w.inflight {
		if f.module == hash {
			return true
		}
	}
	return false
}

func (h *hub) register(p peer, env [][]byte, m protocol.Registration, now time.Time) {
	if len(env) != 2 {
		h.reply(env, protocol.Error{Code: protocol.CodeMalformed, Text: "REGISTRATION goes on the DEALER socket"})
		return
	}
	if m.Mode != h.mode {
		h.log.Warn("refusing a worker of the other mode", "worker", m.Worker, "its_mode", m.Mode)
		h.reply(env, protocol.Error{Code: protocol.CodeWrongMode, Text: fmt.Sprintf("this dispatcher runs %s mode, not %s", h.mode, m.Mode)})
		return
	}
	if m.Worker == "" || m.Capacity <= 0 {
		h.reply(env, protocol.Error{Code: protocol.CodeMalformed, Text: "registration needs a worker id and a capacity"})
		return
	}
	w := h.workers[string(p.route)]
	if h.stopping {
		// A worker told BYE asks to register again until we are back: it is alive, so it
		// must not be declared lost during the drain (that charged its tasks an attempt);
		// what it still holds at the end is handed back uncharged by shutdown.
		if w != nil {
			w.lastHeard = now
		}
		h.reply(env, protocol.Bye{Sender: h.session})
		return
	}
	if w == nil {
		if h.perKey[p.key] >= h.cfg.MaxWorkersPerKey {
			h.dropped(p, dropLimit, 1, "registrations of this key at the limit")
			h.reply(env, protocol.Error{Code: protocol.CodeMalformed, Text: "too many workers registered with this key"})
			return
		}
		w = &remoteWorker{id: m.Worker, key: p.key, via: via(p.key, p.route), route: append([]byte(nil), p.route...), inflight: make(map[string]flight)}
		h.workers[string(p.route)] = w
		h.perKey[p.key]++
		h.log.Info("worker registered", "worker", m.Worker, "peer", p.label(), "capacity", m.Capacity, "running", m.Running)
	}
	if w.capacity > 0 {
		// Registered again on the same connection (a dispatcher restart, a BYE): what it asked
		// before may have been lost with the old session.
		w.retryUntil = now.Add(protocol.ModuleWindow)
	}
	w.id = m.Worker
	w.capacity = min(m.Capacity, maxCapacity)
	w.foreign = max(0, m.Running-len(w.inflight))
	w.lastHeard = now
	w.leaving = false
	h.reply(env, protocol.Ack{Session: h.session, HeartbeatInterval: h.cfg.HeartbeatInterval, HeartbeatTimeout: h.cfg.HeartbeatTimeout})
}

// known returns the worker registered on the connection p (a DEALER, whose envelope is
// [identity][delimiter]) and marks it heard; nil if there is none. The name a message gives
// plays no part.
func (h *hub) known(p peer, env [][]byte, now time.Time) *remoteWorker {
	if len(env) != 2 {
		return nil
	}
	w := h.workers[string(p.route)]
	if w == nil || w.key != p.key {
		return nil
	}
	w.lastHeard = now
	return w
}

// reconcile compares what a worker says it holds with what we sent it: a task sent long
// enough ago that the worker does not hold was lost on the way (a reply dropped by a
// reconnect); tasks it holds that we did not send count against its capacity.
func (h *hub) reconcile(w *remoteWorker, held []task.Ref, now time.Time) {
	holds := make(map[string]int, len(held))
	for _, r := range held {
		holds[r.ID] = r.Attempt
	}
	foreign := 0
	w.foreigns = w.foreigns[:0]
	for _, r := range held {
		if f, ok := w.inflight[r.ID]; ok && f.ref.Attempt == r.Attempt {
			w.readTask(f) // it read this task: what was sent before it too
		} else {
			foreign++
			if len(w.foreigns) < maxCapacity {
				w.foreigns = append(w.foreigns, r)
			}
		}
	}
	w.foreign = foreign
	for id, f := range w.inflight {
		if a, ok := holds[id]; (!ok || a != f.ref.Attempt) && now.Sub(f.sentAt) > h.cfg.HeartbeatTimeout {
			h.log.Warn("worker does not hold a task sent to it; re-queueing", "worker", w.id, "task_id", id)
			delete(w.inflight, id)
			h.c.lost(f.ref)
		}
	}
}

// checkWorkers declares dead the workers silent for HeartbeatTimeout, and hands back
// claimed tasks nobody took.
func (h *hub) checkWorkers(now time.Time) {
	for _, w := range h.workers {
		if now.Sub(w.lastHeard) > h.cfg.HeartbeatTimeout {
			h.log.Warn("worker lost: no heartbeat", "worker", w.id, "silent", now.Sub(w.lastHeard).Round(time.Millisecond), "tasks", len(w.inflight))
			for _, f := range w.inflight {
				h.c.lost(f.ref)
			}
			w.inflight = nil
			h.forget(w)
		}
	}
	if len(h.ready) > 0 && now.Sub(h.readyAt) > readyHold {
		h.releaseReady()
	}
}

// forget removes a worker from the registry (its tasks already finished or handled).
func (h *hub) forget(w *remoteWorker) {
	h.hooks.forget(w)
	if h.workers[string(w.route)] == w {
		delete(h.workers, string(w.route))
		if h.perKey[w.key]--; h.perKey[w.key] <= 0 {
			delete(h.perKey, w.key)
		}
	}
}
