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

// handshakeTries is how many handshakes in a row may fail before the worker gives up: a
// dispatcher restarting mid-handshake costs one, a wrong key costs every one.
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

// handshakeEvents reads the monitor's events; after handshakeTries failures in a row it
// sets w.fatal, which stops the worker.
func (w *worker) handshakeEvents() {
	for {
		ev, _, val, err := w.monitor.RecvEvent(zmq.DONTWAIT)
		if err != nil {
			return
		}
		why := ""
		switch ev {
		case zmq.EVENT_HANDSHAKE_SUCCEEDED:
			w.failedHS = -1 // connected for real: a later disconnect is not a handshake failure
			continue
		case zmq.EVENT_CONNECTED:
			w.failedHS = max(w.failedHS, 0)
			continue
		case zmq.EVENT_HANDSHAKE_FAILED_AUTH:
			if val == 300 { // the dispatcher's per-key rate limit: retry
				continue
			}
			why = fmt.Sprintf("the dispatcher refused this worker's key (ZAP status %d): add the worker's public key (PATH.pub) to the dispatcher's --authorized-workers file", val)
		case zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
			why = w.mismatch()
		case zmq.EVENT_DISCONNECTED:
			if w.failedHS < 0 {
				w.failedHS = 0 // a working connection dropped: a fresh start
				continue
			}
			why = w.mismatch()
		default:
			continue
		}
		w.failedHS++
		w.log.Warn("handshake with the dispatcher failed", "try", w.failedHS, "of", handshakeTries, "why", why)
		if w.failedHS >= handshakeTries && w.fatal == nil {
			w.fatal = fmt.Errorf("%w: %s", ErrRefused, why)
			w.log.Error("giving up on the dispatcher", "why", why)
		}
	}
}

// mismatch says what a handshake that failed without a ZAP answer most likely means.
func (w *worker) mismatch() string {
	if w.cfg.Key.IsZero() {
		return "the dispatcher closed the connection during the handshake: it probably requires CURVE (start this worker with --key and --dispatcher-key)"
	}
	return "the dispatcher closed the connection during the CURVE handshake: --dispatcher-key is probably not its public key, or it runs without --key"
}
