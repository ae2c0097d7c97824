package dispatch

import (
	"fmt"
	"time"

	"faas/protocol"
)

// This file bounds what the hub sends one worker connection in MODULE replies. SNDHWM counts
// messages, not bytes, and ZeroMQ tells nobody how many bytes wait in one peer's pipe: a
// registered peer that asks and never reads could have the ROUTER queue module after module.
// So each connection gets, per protocol.ModuleWindow (10 s):
//   - each module once, or twice after it registered again on the same connection (what it
//     asked before may have been lost with the old session); a worker whose process
//     restarted is a new connection with a fresh allowance;
//   - at most moduleByteBudget bytes of modules in all.
//
// Beyond either, the answer is a MODULE of a few bytes whose error starts with
// protocol.ModuleRetryLater: an honest worker asks again after the window (its tasks wait;
// nothing fails), a peer that does not read queues only those small errors.
//
// An honest worker asks once per module: its executors share one fetch and compilation per
// module (executor.load), and it keeps no bytes it has compiled.

// moduleByteBudget bounds the module bytes sent to one connection per window: eight of the
// largest modules the server accepts by default (32 MiB). A worker that needs more distinct
// modules within 10 s gets the rest in the next window.
const moduleByteBudget = 256 << 20

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

// bytesRefusal says why size more bytes of modules may not be sent to w now ("" if they may).
func (w *remoteWorker) bytesRefusal(size int, now time.Time) string {
	if b := w.moduleBytes.current(now); b.n+size > moduleByteBudget {
		return fmt.Sprintf("%d MiB of modules sent to this connection within %s, the budget is %d MiB",
			b.n>>20, protocol.ModuleWindow, moduleByteBudget>>20)
	}
	return ""
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
	b := w.moduleBytes.current(now)
	b.n += size
	w.moduleBytes = b
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
		why = w.bytesRefusal(len(m.Wasm), now)
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
