package dispatch

import (
	"errors"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/task"
)

// This file holds what the hub does with the messages workers send (docs/PROTOCOL.md).

// messageBounds bound what one worker's message may hold in the hub's memory.
var messageBounds = zsock.Bounds{Frames: protocol.MaxFrames + 8, Bytes: protocol.MaxMessageTotal}

// receive handles every message waiting on the ROUTER. The sender is the connection: with
// CURVE, the key the ZAP handler authenticated (the "User-Id" of the message); always, the
// routing id of the connection.
func (h *hub) receive() {
	for i := 0; i < 4096; i++ {
		frames, user, over, err := zsock.Recv(h.router, zmq.DONTWAIT, h.curve, messageBounds)
		if err != nil {
			if !zsock.IsAgain(err) {
				h.log.Error("receive failed", "err", err)
			}
			return
		}
		p := peer{key: user}
		if len(frames) > 0 {
			p.route = frames[0]
		}
		if over {
			h.dropped(p, dropLimit, 1, "message over the protocol's bounds (frames or bytes)")
			continue
		}
		if h.curve && !h.cfg.Authorized.Allowed(p.key) {
			// Authenticated once, removed from the list since: nothing it says counts.
			h.dropped(p, dropUnauthorized, 1, "key not on the allow-list")
			continue
		}
		env, body, ok := protocol.SplitEnvelope(frames)
		if !ok {
			h.dropped(p, dropMalformed, 1, "no envelope")
			continue
		}
		m, err := protocol.Decode(body)
		if err != nil {
			h.dropped(p, dropMalformed, 1, err.Error())
			code := protocol.CodeMalformed
			if isVersion(err) {
				code = protocol.CodeBadVersion
			}
			h.reply(env, protocol.Error{Code: code, Text: err.Error()})
			continue
		}
		h.handle(p, env, m)
	}
}

func (h *hub) handle(p peer, env [][]byte, m protocol.Message) {
	now := time.Now()
	switch m := m.(type) {
	case protocol.Registration:
		h.register(p, env, m, now)
	case protocol.RequestTask:
		if h.mode != protocol.ModePull {
			h.reply(env, protocol.Error{Code: protocol.CodeMalformed, Text: "REQUEST_TASK sent to a push dispatcher"})
			return
		}
		h.hooks.request(p, env, m)
	case protocol.ResultReady:
		h.results(p, env, m, now)
	case protocol.Heartbeat:
		w := h.known(p, env, now)
		if w == nil {
			h.reply(env, protocol.Error{Code: protocol.CodeUnknownWorker, Text: "register again"})
			return
		}
		w.echoed(m.Token)
		h.reconcile(w, m.Held, now)
		token := newToken()
		if h.reply(env, protocol.Heartbeat{Sender: h.session, Token: token}) {
			w.tokenSent(token)
		}
	case protocol.ModuleRequest:
		w := h.known(p, env, now)
		if w != nil && !w.hasModule(m.Hash) && len(w.foreigns) > 0 {
			// Perhaps for a task a previous run of the dispatcher sent it: the store knows.
			h.moduleChecked(env, m, w)
			return
		}
		if w == nil || !w.hasModule(m.Hash) {
			// Modules go only to a worker that was sent a task of theirs.
			h.dropped(p, dropNotSent, 1, "module request without a task of that module")
			h.reply(env, protocol.Module{Hash: m.Hash, Err: "no task of this module was sent to this worker"})
			return
		}
		if why := w.moduleRefusal(m.Hash, now); why != "" {
			// It was sent these bytes moments ago: a peer asking again and again without
			// reading would have the ROUTER queue a module per request (budget.go).
			h.dropped(p, dropLimit, 1, why)
			h.reply(env, protocol.Module{Hash: m.Hash, Err: protocol.ModuleRetryLater + why})
			return
		}
		h.moduleRequested(env, m)
	case protocol.Release:
		w := h.known(p, env, now)
		if w == nil {
			h.dropped(p, dropUnknown, len(m.Refs), "release from an unregistered connection")
			return
		}
		refused := 0
		for _, r := range m.Refs {
			if f, ok := w.inflight[r.ID]; ok && f.ref == r {
				delete(w.inflight, r.ID)
				h.c.release(r)
			} else {
				refused++
			}
		}
		if refused > 0 {
			h.dropped(p, dropNotSent, refused, "release of a task not sent to this worker")
		}
		if w.leaving && len(w.inflight) == 0 {
			h.forget(w)
		}
	case protocol.Bye:
		w := h.known(p, env, now)
		if w == nil {
			return
		}
		h.log.Info("worker leaving", "worker", w.id, "tasks", len(w.inflight))
		// Acknowledge: the worker waits for this before it closes, so tasks we sent just
		// before reading its BYE reach it first (one connection keeps order) and come back
		// as RELEASE instead of being lost with its socket (which charged an attempt).
		if !w.leaving {
			h.reply(env, protocol.Bye{Sender: h.session})
		}
		w.leaving = true
		h.hooks.forget(w) // answers a held request
		if len(w.inflight) == 0 {
			h.forget(w)
		}
	default:
		h.dropped(p, dropMalformed, 1, "unexpected message type "+m.Type().String())
	}
}

// results takes a worker's outcomes: only those of tasks sent to this connection at that
// attempt, and only if an honest worker could have produced them.
func (h *hub) results(p peer, env [][]byte, m protocol.ResultReady, now time.Time) {
	w := h.known(p, env, now)
	v := via(p.key, p.route)
	for i := range m.Outcomes {
		o := &m.Outcomes[i]
		o.Worker = m.Worker
		if w != nil {
			o.Worker = w.id
			if f, ok := w.inflight[o.ID]; ok && f.ref == o.Ref {
				w.readTask(f)
				delete(w.inflight, o.ID)
				if why := badOutcome(*o, f.limits); why != "" {
					// Re-run elsewhere, attempt charged (docs/RATIONALE.md says why).
					h.dropped(p, dropOutcome, 1, why)
					h.c.lost(f.ref)
					continue
				}
				w.done++
				h.c.finishFrom(*o, v)
				continue
			}
			if w.foreign == 0 {
				h.dropped(p, dropNotSent, 1, "result of a task not sent to this worker")
				continue
			}
			w.foreign--
			w.done++
		}
		// A task we did not send in this run (we restarted, or the worker registered
		// again): the store records it only if it is RUNNING at that attempt and was sent
		// on this very connection.
		if why := badOutcome(*o, task.MaxLimits()); why != "" {
			h.dropped(p, dropOutcome, 1, why)
			continue
		}
		h.c.finishFrom(*o, v)
	}
	if w != nil && w.leaving && len(w.inflight) == 0 {
		h.forget(w)
	}
}

func isVersion(err error) bool {
	return err != nil && errors.Is(err, protocol.ErrVersion)
}
