package dispatch

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"faas/protocol"
)

// This file bounds what the hub sends one worker connection in MODULE replies. SNDHWM counts
// messages, not bytes, and ZeroMQ tells nobody how many bytes wait in one peer's pipe: a
// registered peer that asks and never reads could have the ROUTER queue module after module.
// So each connection is sent:
//   - each module once per protocol.ModuleWindow (10 s), twice after it registered again on
//     the same connection (what it asked before may have been lost with the old session); a
//     worker whose process restarted is a new connection with a fresh allowance;
//   - at most moduleByteBudget bytes of modules it has not acknowledged. A connection
//     acknowledges everything sent to it before a message it shows it has read (one
//     connection keeps order): the token of a dispatcher HEARTBEAT echoed in its own
//     HEARTBEAT (protocol.Heartbeat.Token), or a task sent to it on the same connection
//     (push mode) that it lists in a heartbeat or reports in a result. An honest worker
//     acknowledges within a heartbeat; a peer that never reads is queued at most
//     moduleByteBudget bytes of modules, ever.
//
// Beyond either, the answer is a MODULE of a few bytes whose error starts with
// protocol.ModuleRetryLater: an honest worker asks again after the window (its tasks wait;
// nothing fails), a peer that does not read queues only those small errors.
//
// An honest worker asks once per module: its executors share one fetch and compilation per
// module (executor.load).

// moduleByteBudget bounds the module bytes queued to one connection and not acknowledged:
// eight of the largest modules the server accepts by default (32 MiB).
const moduleByteBudget = 256 << 20

// maxTokens bounds the heartbeat tokens remembered per connection while modules wait for
// their acknowledgement: an echo of an older one proves nothing more recent anyway.
const maxTokens = 8

// moduleAnswers counts answers (n) or bytes since since.
type moduleAnswers struct {
	since time.Time
	n     int
}

func (a moduleAnswers) current(now time.Time) moduleAnswers {
	if now.Sub(a.since) >= protocol.ModuleWindow {
		return moduleAnswers{since: now}
	}
	return a
}

// moduleRefusal says why module hash may not be sent to w now ("" if it may), counting the
// answers sent in the current window.
func (w *remoteWorker) moduleRefusal(hash string, now time.Time) string {
	allowed := 1
	if now.Before(w.retryUntil) {
		allowed = 2
	}
	if w.modulesSent[hash].current(now).n >= allowed {
		return fmt.Sprintf("module sent to this connection %d times within %s", allowed, protocol.ModuleWindow)
	}
	return ""
}

// bytesRefusal says why size more bytes of modules may not be sent to w ("" if they may).
func (w *remoteWorker) bytesRefusal(size int) string {
	if w.unacked+size > moduleByteBudget {
		return fmt.Sprintf("%d MiB of modules sent to this connection are not acknowledged yet, the budget is %d MiB",
			w.unacked>>20, moduleByteBudget>>20)
	}
	return ""
}

// tokenSent records a heartbeat token sent to w after its last module: echoed, it
// acknowledges that module.
func (w *remoteWorker) tokenSent(token string) {
	if w.unacked == 0 {
		return
	}
	if len(w.tokens) == maxTokens {
		w.tokens = append(w.tokens[:0], w.tokens[1:]...)
	}
	w.tokens = append(w.tokens, token)
}

// echoed takes the token w echoed in a heartbeat.
func (w *remoteWorker) echoed(token string) {
	for _, t := range w.tokens {
		if t == token {
			w.acknowledged()
			return
		}
	}
}

// readTask takes a task w shows it has read (held in a heartbeat, or its result): sent on
// the control connection after w's last module, it acknowledges the module.
func (w *remoteWorker) readTask(f flight) {
	if f.seq > w.moduleSeq {
		w.acknowledged()
	}
}

func (w *remoteWorker) acknowledged() {
	w.unacked = 0
	w.tokens = w.tokens[:0]
}

// moduleSent counts a module of size bytes sent to w. The map stays small: a worker may ask
// only for modules of tasks it was sent, and entries of past windows go when it grows.
func (w *remoteWorker) moduleSent(hash string, size int, now time.Time) {
	if w.modulesSent == nil {
		w.modulesSent = make(map[string]moduleAnswers)
	}
	if len(w.modulesSent) >= maxCapacity {
		for k, old := range w.modulesSent {
			if now.Sub(old.since) >= protocol.ModuleWindow {
				delete(w.modulesSent, k)
			}
		}
	}
	a := w.modulesSent[hash].current(now)
	a.n++
	w.modulesSent[hash] = a
	w.unacked += size
	w.tokens = w.tokens[:0] // tokens sent before this module prove nothing about it
	w.moduleSeq = w.taskSeq
}

// sendModule answers the connection route with m, within that connection's allowance and
// byte budget (a connection no longer registered gets m as it is: it is an error, or the
// answer of a checked fetch for a worker that left, both small or soon dropped by libzmq).
func (h *hub) sendModule(route []byte, m protocol.Module) {
	h.env[0], h.env[1] = route, nil
	w := h.workers[string(route)]
	if w == nil || m.Err != "" {
		h.reply(h.env, m)
		return
	}
	now := time.Now()
	why := w.moduleRefusal(m.Hash, now)
	if why == "" {
		why = w.bytesRefusal(len(m.Wasm))
	}
	if why != "" {
		h.dropped(w.peer(), dropLimit, 1, why)
		h.reply(h.env, protocol.Module{Hash: m.Hash, Err: protocol.ModuleRetryLater + why})
		return
	}
	if h.reply(h.env, m) {
		w.moduleSent(m.Hash, len(m.Wasm), now)
	}
}

// newToken returns a fresh heartbeat token: unguessable, so that only a peer that read the
// heartbeat can echo it.
func newToken() string {
	var b [protocol.TokenLen / 2]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
