package worker

// This file: watching the control socket's handshakes, so that a worker whose key the
// dispatcher refuses, or that pins the wrong dispatcher key, or speaks CURVE to a dispatcher
// without it (or the reverse), says so and stops within seconds instead of waiting forever:
// ZeroMQ itself only reconnects, silently.

import (
	"errors"
	"fmt"
	"sync/atomic"

	zmq "github.com/pebbe/zmq4"
)

// ErrRefused is returned by Run when the dispatcher does not accept this worker: its key is
// not authorized, the dispatcher key it pins is not the dispatcher's, or one side speaks
// CURVE and the other does not.
var ErrRefused = errors.New("the dispatcher refused this worker")

// ErrWrongMode is returned by Run when the dispatcher runs the other mode (a push worker at
// a pull dispatcher, or the reverse): a mistake in the worker's command line.
var ErrWrongMode = errors.New("the dispatcher runs the other mode")

// handshakeTries is how many connections in a row may close during the handshake before
// the worker gives up: a dispatcher restarting mid-handshake costs one, a wrong dispatcher
// key every one. A refused key or a mechanism mismatch is final at once: libzmq does not
// reconnect after such a protocol error, so waiting would be the silent wait this avoids.
const handshakeTries = 3

var monitorSeq atomic.Uint64

// watchHandshakes starts a monitor of s's connections and returns the socket its events
// arrive on (owned, like s, by the worker's loop).
func watchHandshakes(zctx *zmq.Context, s *zmq.Socket) (*zmq.Socket, error) {
	addr := fmt.Sprintf("inproc://faas-worker-monitor-%d", monitorSeq.Add(1))
	events := zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED |
		zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
	if err := s.Monitor(addr, events); err != nil {
		return nil, fmt.Errorf("monitoring the connection: %w", err)
	}
	m, err := zctx.NewSocket(zmq.PAIR)
	if err != nil {
		return nil, err
	}
	m.SetLinger(0)
	if err := m.Connect(addr); err != nil {
		m.Close()
		return nil, fmt.Errorf("monitoring the connection: %w", err)
	}
	return m, nil
}

// handshakeEvents reads the monitor's events and sets w.fatal, which stops the worker, on a
// refused key, a mechanism mismatch, or handshakeTries connections in a row closed during
// the handshake.
func (w *worker) handshakeEvents() {
	for {
		ev, _, val, err := w.monitor.RecvEvent(zmq.DONTWAIT)
		if err != nil {
			return
		}
		why, final := "", false
		switch ev {
		case zmq.EVENT_HANDSHAKE_SUCCEEDED:
			w.failedHS, w.hsCounted = -1, false // connected for real
			continue
		case zmq.EVENT_CONNECTED:
			w.failedHS, w.hsCounted = max(w.failedHS, 0), false
			continue
		case zmq.EVENT_HANDSHAKE_FAILED_AUTH:
			if val == 300 { // the dispatcher's per-key rate limit: retry
				continue
			}
			why, final = fmt.Sprintf("the dispatcher refused this worker's key (ZAP status %d): add the worker's public key (PATH.pub) to the dispatcher's --authorized-workers file", val), true
		case zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
			why, final = w.mismatch(), true
		case zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_DISCONNECTED:
			if w.failedHS < 0 {
				w.failedHS = 0 // a working connection dropped: a fresh start
				continue
			}
			if w.hsCounted { // the same connection's second event
				continue
			}
			w.hsCounted = true
			w.failedHS++
			why, final = w.mismatch(), w.failedHS >= handshakeTries
		default:
			continue
		}
		if w.fatal != nil {
			continue
		}
		if !final {
			w.log.Warn("handshake with the dispatcher failed", "try", w.failedHS, "of", handshakeTries, "why", why)
			continue
		}
		w.fatal = fmt.Errorf("%w: %s", ErrRefused, why)
		w.log.Error("giving up on the dispatcher", "why", why)
	}
}

// mismatch says what a handshake that failed without a ZAP answer most likely means.
func (w *worker) mismatch() string {
	if w.cfg.Key.IsZero() {
		return "the dispatcher closed the connection during the handshake: it probably requires CURVE (start this worker with --key and --dispatcher-key)"
	}
	return "the dispatcher closed the connection during the CURVE handshake: --dispatcher-key is probably not its public key, or it runs without --key"
}
