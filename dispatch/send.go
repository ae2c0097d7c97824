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

// sendTasks sends to w as many tasks of ts as fit in one message (protocol.MaxMessageBytes)
// and records them in flight, and with the store as sent on w's connection; it returns the
// tasks that did not fit. If w cannot be reached the tasks sent go back to the queue.
func (h *hub) sendTasks(w *remoteWorker, env [][]byte, ts []task.Task) (rest []task.Task) {
	n := fit(ts)
	ts, rest = ts[:n:n], ts[n:]
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
		return rest
	}
	now := time.Now()
	seq := 0
	if env == nil { // on its control connection, behind any module sent before
		w.taskSeq++
		seq = w.taskSeq
	}
	refs := make([]task.Ref, len(ts))
	for i, t := range ts {
		refs[i] = t.Ref()
		w.inflight[t.ID] = flight{ref: t.Ref(), seq: seq, sentAt: now, module: t.ModuleHash, limits: t.Limits}
	}
	h.c.sent(w.id, w.via, refs)
	return rest
}

// taskFraming is a generous bound on the bytes of one task in NEW_TASK beside its input.
const taskFraming = 1 << 10

// fit returns how many tasks of ts (at least one) fit in one NEW_TASK under
// protocol.MaxMessageBytes. One task always fits: the server bounds an input well under it.
func fit(ts []task.Task) int {
	size := 0
	for i, t := range ts {
		size += len(t.Input) + len(t.ID) + len(t.FunctionID) + len(t.Name) + len(t.ModuleHash) + taskFraming
		if size > protocol.MaxMessageBytes && i > 0 {
			return i
		}
	}
	return len(ts)
}
