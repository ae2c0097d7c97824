package dispatch

// This file holds what the hub trusts and what it does not: who sent a message (the
// authenticated connection, never a field of the message), what a worker may touch (the
// tasks sent to that very connection), what an outcome may hold, and how refusals are
// counted and logged. docs/PROTOCOL.md ("Threat model") explains the rules.

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"faas/protocol"
	"faas/task"
)

// Reasons a message is dropped: the label values of faas_dispatch_messages_dropped_total.
const (
	dropUnauthorized = "unauthorized"   // a key not (or no longer) on the allow-list
	dropUnknown      = "unknown_peer"   // a connection that is not a registered worker
	dropNotSent      = "not_sent"       // about a task (or module) not sent to that connection
	dropOutcome      = "bad_outcome"    // a result over its limits or of an unknown failure kind
	dropLimit        = "over_limit"     // registrations of one key beyond MaxWorkersPerKey, a message over the protocol's bounds, a module over the allowance (budget.go)
	dropMalformed    = "malformed"      // not a message of this protocol
	dropHandshake    = "handshake"      // refused by the ZAP handler (counted there)
	dropLogEvery     = 10 * time.Second // a peer's drops are logged at most this often
)

var dropReasons = []string{dropUnauthorized, dropUnknown, dropNotSent, dropOutcome, dropLimit, dropMalformed, dropHandshake}

// stderrCap is the largest stderr a worker may return: the sandbox's default tail (workers
// run with it).
const stderrCap = 64 << 10

// messageCap bounds a failure message from a worker.
const messageCap = 64 << 10

// peer is who sent a message: the worker's CURVE key ("" without CURVE) and the ROUTER
// routing id of the connection it came on.
type peer struct {
	key   string
	route []byte
}

// via names a worker connection in the store (task field sent_to): a hash of its key and
// its routing id, so that the routing id (which the worker chose and keeps secret) is not
// written anywhere, and a result can be checked against it after a dispatcher restart.
func via(key string, route []byte) string {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(route)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// label is how a peer appears in logs: a prefix of its key, or its connection hash.
func (p peer) label() string {
	if p.key != "" {
		return "key:" + p.key[:8]
	}
	return "conn:" + via("", p.route)[:8]
}

// controlRoute is the routing id of the DEALER that belongs with the REQ route r (see
// protocol.RouteRequest), or nil if r does not follow the naming.
func controlRoute(r []byte) []byte {
	if len(r) < 2 || r[0] != protocol.RouteRequest {
		return nil
	}
	c := append([]byte(nil), r...)
	c[0] = protocol.RouteControl
	return c
}

// dropped counts a refused message and logs it at most once per peer per dropLogEvery.
func (h *hub) dropped(p peer, reason string, n int, detail string) {
	h.c.m.dropped.WithLabelValues(reason).Add(float64(n))
	k := p.label()
	now := time.Now()
	if last, ok := h.dropLog[k]; ok && now.Sub(last) < dropLogEvery {
		return
	}
	if len(h.dropLog) > 4096 {
		clear(h.dropLog)
	}
	h.dropLog[k] = now
	h.log.Warn("dropping messages of a worker", "peer", k, "reason", reason, "detail", detail, "next_log_in", dropLogEvery)
}

// badOutcome says why an outcome cannot be from an honest worker running the task as sent
// ("" when it can): a result over the function's stdout_bytes, stderr over the sandbox's
// cap, a failure kind outside the contract's list.
func badOutcome(o task.Outcome, lim task.Limits) string {
	switch {
	case o.Failure == nil && int64(len(o.Stdout)) > lim.WithDefaults().StdoutBytes:
		return "result larger than the function's stdout_bytes"
	case len(o.Stderr) > stderrCap:
		return "stderr larger than the cap"
	case o.Failure != nil && !o.Failure.Kind.Known():
		return "unknown failure kind"
	case o.Failure != nil && len(o.Failure.Message) > messageCap:
		return "failure message too long"
	}
	return ""
}

// keysRemoved drops the workers whose key left the allow-list: their tasks go back to the
// queue (uncharged: the worker was cut off, the task did nothing wrong), and they hear
// ERROR unauthorized, on which an honest worker stops. Whatever such a connection sends
// from now on is dropped (receive checks the list on every message).
func (h *hub) keysRemoved(removed []string) {
	gone := make(map[string]bool, len(removed))
	for _, k := range removed {
		gone[k] = true
	}
	for _, w := range h.workers {
		if !gone[w.key] {
			continue
		}
		h.log.Warn("worker key removed from the allow-list; dropping the worker", "worker", w.id, "peer", w.peer().label(), "tasks", len(w.inflight))
		h.send(w, protocol.Error{Code: protocol.CodeUnauthorized, Text: "this worker's key was removed from the dispatcher's authorized workers"})
		for _, f := range w.inflight {
			h.c.release(f.ref)
		}
		w.inflight = nil
		h.forget(w)
	}
}

// refusalLog rate-limits the log of handshakes the ZAP handler refused (it runs on the
// handler's goroutine, so it has its own lock).
type refusalLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// logRefusal logs a refused handshake at most once per key per dropLogEvery.
func (h *hub) logRefusal(key, reason string) {
	l := &h.refusals
	l.mu.Lock()
	now := time.Now()
	if l.last == nil || len(l.last) > 4096 {
		l.last = make(map[string]time.Time)
	}
	last, seen := l.last[key]
	due := !seen || now.Sub(last) >= dropLogEvery
	if due {
		l.last[key] = now
	}
	l.mu.Unlock()
	if due {
		label := "(no CURVE key)"
		if len(key) >= 8 {
			label = "key:" + key[:8]
		}
		h.log.Warn("refused a worker's handshake", "peer", label, "reason", reason, "next_log_in", dropLogEvery)
	}
}
