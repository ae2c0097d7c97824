package dispatch

import (
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/task"
)

// This file holds how the hub sends to workers. Sends never block the hub loop: a worker
// that vanished or whose pipe is full misses the message, and what it was sent goes back.

// send sends m on w's control socket. It reports false when the worker is unreachable.
func (h *hub) send(w *remoteWorker, m protocol.Message) bool {
	h.env[0], h.env[1] = w.route, nil
	return h.reply(h.env, m)
}

// reply sends m to the envelope env.
func (h *hub) reply(env [][]byte, m protocol.Message) bool {
	h.frames = m.Append(h.frames[:0])
	err := zsock.Send(h.router, zmq.DONTWAIT, env, h.frames)
	clear(h.frames)
	if err != nil {
		if !zsock.IsUnreachable(err) && !zsock.IsAgain(err) {
			h.log.Error("sending failed", "type", m.Type(), "err", err)
		}
		return false
	}
	return true
}

// sendTasks sends ts to w and records them in flight; if w cannot be reached they go
// back to the queue.
func (h *hub) sendTasks(w *remoteWorker, env [][]byte, ts []task.Task) {
	var ok bool
	if env == nil {
		ok = h.send(w, protocol.NewTask{Tasks: ts})
	} else {
		ok = h.reply(env, protocol.NewTask{Tasks: ts})
	}
	if !ok {
		h.log.Warn("worker unreachable; handing its tasks back", "worker", w.id, "tasks", len(ts))
		for _, t := range ts {
			h.c.release(t.Ref())
		}
		return
	}
	now := time.Now()
	for _, t := range ts {
		w.inflight[t.ID] = flight{ref: t.Ref(), sentAt: now}
	}
}
