package dispatch

import (
	"errors"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
)

// This file holds what the hub does with the messages workers send (docs/PROTOCOL.md).

// receive handles every message waiting on the ROUTER.
func (h *hub) receive() {
	for i := 0; i < 4096; i++ {
		frames, err := h.router.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if !zsock.IsAgain(err) {
				h.log.Error("receive failed", "err", err)
			}
			return
		}
		env, body, ok := protocol.SplitEnvelope(frames)
		if !ok {
			h.log.Warn("dropping a message without an envelope", "frames", len(frames))
			continue
		}
		m, err := protocol.Decode(body)
		if err != nil {
			h.log.Warn("dropping a bad message", "err", err)
			code := protocol.CodeMalformed
			if isVersion(err) {
				code = protocol.CodeBadVersion
			}
			h.reply(env, protocol.Error{Code: code, Text: err.Error()})
			continue
		}
		h.handle(env, m)
	}
}

func (h *hub) handle(env [][]byte, m protocol.Message) {
	now := time.Now()
	switch m := m.(type) {
	case protocol.Registration:
		h.register(env, m, now)
	case protocol.RequestTask:
		if h.mode != protocol.ModePull {
			h.reply(env, protocol.Error{Code: protocol.CodeMalformed, Text: "REQUEST_TASK sent to a push dispatcher"})
			return
		}
		h.hooks.request(env, m)
	case protocol.ResultReady:
		w := h.known(env, m.Worker, now)
		for i := range m.Outcomes {
			o := &m.Outcomes[i]
			o.Worker = m.Worker
			if w != nil {
				if f, ok := w.inflight[o.ID]; ok && f.ref == o.Ref {
					delete(w.inflight, o.ID)
				} else if w.foreign > 0 {
					w.foreign--
				}
			}
			// Also from a worker we do not know (we restarted): the store records it only
			// if the task is still RUNNING at that attempt.
			h.c.finish(*o)
		}
		if w != nil && w.leaving && len(w.inflight) == 0 {
			h.forget(w)
		}
	case protocol.Heartbeat:
		w := h.known(env, m.Sender, now)
		if w == nil {
			h.reply(env, protocol.Error{Code: protocol.CodeUnknownWorker, Text: "register again"})
			return
		}
		h.reconcile(w, m.Held, now)
		h.reply(env, protocol.Heartbeat{Sender: h.session})
	case protocol.ModuleRequest:
		h.known(env, m.Worker, now)
		h.moduleRequested(env, m)
	case protocol.Release:
		w := h.known(env, m.Worker, now)
		for _, r := range m.Refs {
			if w != nil {
				if f, ok := w.inflight[r.ID]; ok && f.ref == r {
					delete(w.inflight, r.ID)
				}
			}
			h.c.release(r)
		}
		if w != nil && w.leaving && len(w.inflight) == 0 {
			h.forget(w)
		}
	case protocol.Bye:
		w := h.known(env, m.Sender, now)
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
		h.log.Warn("dropping an unexpected message", "type", m.Type())
	}
}

func isVersion(err error) bool {
	return err != nil && errors.Is(err, protocol.ErrVersion)
}
