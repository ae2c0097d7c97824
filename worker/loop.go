package worker

// This file: the sockets, the worker's loop, and the messages it sends on its own initiative
// (registration, heartbeats, requests for work and modules).

import (
	"context"
	"fmt"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
)

func (w *worker) run(ctx context.Context) error {
	// A context of its own: terminating it at exit waits (up to closeLinger) until the last
	// results, hand-backs and BYE have left, whatever else the process does with ZeroMQ.
	zctx, err := zmq.NewContext()
	if err != nil {
		return err
	}
	poller, err := w.open(zctx)
	if err != nil {
		zsock.Terminate(zctx, 2*closeLinger)
		return err
	}

	// Tasks run under runCtx, which outlives ctx by up to drainTimeout.
	runCtx, interrupt := context.WithCancel(context.WithoutCancel(ctx))
	defer interrupt()
	stopWatch := context.AfterFunc(ctx, func() { w.box.Put(event{kind: evStop}) })
	defer stopWatch()

	w.log.Info("worker started", "endpoint", w.cfg.Endpoint, "slots", w.cfg.Slots)
	w.serve(runCtx, poller)
	w.stop(runCtx, poller, interrupt, zctx)
	return w.fatal
}

// open creates the mailbox and the sockets, and a poller over them; on failure it closes
// what it created.
func (w *worker) open(zctx *zmq.Context) (_ *zmq.Poller, err error) {
	if w.box, err = zsock.NewMailbox[event](zctx); err != nil {
		return nil, err
	}
	if w.ctrl, err = w.newSocket(zctx, zmq.DEALER); err != nil {
		w.box.Close()
		return nil, err
	}
	if w.monitor, err = watchHandshakes(zctx, w.ctrl); err != nil {
		w.ctrl.Close()
		w.box.Close()
		return nil, err
	}
	if err := w.ctrl.Connect(w.cfg.Endpoint); err != nil {
		w.monitor.Close()
		w.ctrl.Close()
		w.box.Close()
		return nil, fmt.Errorf("connect %s: %w", w.cfg.Endpoint, err)
	}
	poller := zmq.NewPoller()
	poller.Add(w.ctrl, zmq.POLLIN)
	poller.Add(w.box.Socket(), zmq.POLLIN)
	poller.Add(w.monitor, zmq.POLLIN)
	if w.cfg.Mode == protocol.ModePull {
		if w.req, err = w.newSocket(zctx, zmq.REQ); err == nil {
			if err = w.req.Connect(w.cfg.Endpoint); err != nil {
				w.req.Close()
				err = fmt.Errorf("connect %s: %w", w.cfg.Endpoint, err)
			}
		}
		if err != nil {
			w.monitor.Close()
			w.ctrl.Close()
			w.box.Close()
			return nil, err
		}
		poller.Add(w.req, zmq.POLLIN)
	}
	return poller, nil
}

// newSocket makes a socket to the dispatcher, not yet connected: its routing id, CURVE
// (if configured) and the message bound, which a dispatcher is a peer subject to as well.
func (w *worker) newSocket(zctx *zmq.Context, t zmq.Type) (*zmq.Socket, error) {
	s, err := zctx.NewSocket(t)
	if err != nil {
		return nil, err
	}
	prefix := protocol.RouteControl
	if t == zmq.REQ {
		prefix = protocol.RouteRequest
	}
	if err := s.SetIdentity(string(prefix) + w.routeSecret); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.SetMaxmsgsize(protocol.MaxMessageBytes); err != nil {
		s.Close()
		return nil, err
	}
	if !w.cfg.Key.IsZero() {
		if err := zsock.CurveClient(s, w.cfg.Key, w.cfg.DispatcherKey); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.SetLinger(0)
	s.SetReconnectIvl(100 * time.Millisecond)
	s.SetReconnectIvlMax(time.Second)
	if t == zmq.REQ {
		// A request whose reply is lost (dispatcher restart) must not wedge the socket.
		s.SetReqRelaxed(1)
		s.SetReqCorrelate(1)
	}
	return s, nil
}

// serve is the loop of a working worker: keep the connection alive, ask for work when a
// slot is free (pull), handle what arrives. It returns when ctx has ended.
func (w *worker) serve(runCtx context.Context, poller *zmq.Poller) {
	for {
		now := w.keepAlive()
		if w.cfg.Mode == protocol.ModePull && w.registered && !w.asking && !now.Before(w.askAfter) {
			if free := w.cfg.Slots + w.cfg.Queue - len(w.running) - len(w.queued); free > 0 {
				w.ask(free)
			}
		}
		if w.pump(runCtx, poller, w.untilGiveUp(time.Second)) || w.fatal != nil {
			return
		}
	}
}

// keepAlive notices a silent dispatcher (and registers again) and sends the heartbeat, or
// the registration, when it is due. It returns the time it went by.
func (w *worker) keepAlive() time.Time {
	now := time.Now()
	if w.registered && now.Sub(w.lastHeard) > w.hbDead {
		w.log.Warn("dispatcher silent; registering again", "silent", now.Sub(w.lastHeard).Round(time.Millisecond))
		w.registered = false
		w.nextBeat = now
	}
	w.checkAnswered(now)
	if !now.Before(w.nextBeat) {
		w.beat(now)
		w.nextBeat = now.Add(w.hbEvery)
	}
	return now
}

// pump waits up to maxWait (less if a heartbeat or a request for work falls due sooner) for
// messages and events, and handles all that arrived. It reports whether ctx has ended.
func (w *worker) pump(runCtx context.Context, poller *zmq.Poller, maxWait time.Duration) (stop bool) {
	wait := zsock.Until(w.nextBeat, time.Second)
	if now := time.Now(); !w.askAfter.IsZero() && w.askAfter.After(now) {
		wait = min(wait, zsock.Until(w.askAfter, time.Second))
	}
	polled, err := poller.Poll(min(wait, maxWait))
	if err != nil {
		w.log.Error("poll failed", "err", err)
		return false
	}
	for _, p := range polled {
		switch p.Socket {
		case w.ctrl:
			w.receiveAll(runCtx, w.ctrl, true)
		case w.req:
			w.receiveAll(runCtx, w.req, false)
		case w.monitor:
			w.handshakeEvents()
		}
	}
	if w.events = w.box.Take(w.events); len(w.events) > 0 {
		return w.handleEvents(runCtx, w.events)
	}
	return false
}

// beat sends a heartbeat, or a registration while the dispatcher has not acknowledged us.
// It also asks again for modules whose answer is overdue.
func (w *worker) beat(now time.Time) {
	if !w.registered {
		if !w.stopping {
			w.register()
		}
		return
	}
	w.send(protocol.Heartbeat{Sender: w.cfg.ID, Token: w.token, Held: w.held()})
	for hash, due := range w.asked {
		if now.After(due) {
			w.askModule(hash)
		}
	}
}

func (w *worker) register() {
	w.send(protocol.Registration{Worker: w.cfg.ID, Mode: w.cfg.Mode, Capacity: w.cfg.Slots + w.cfg.Queue,
		Running: len(w.running) + len(w.queued)})
}

func (w *worker) ask(n int) {
	w.frames = protocol.RequestTask{Worker: w.cfg.ID, Want: n}.Append(w.frames[:0])
	if err := zsock.Send(w.req, zmq.DONTWAIT, nil, w.frames); err != nil {
		if !zsock.IsAgain(err) {
			w.log.Error("sending REQUEST_TASK failed", "err", err)
		}
		w.askAfter = time.Now().Add(w.hbEvery)
		return
	}
	w.asking = true
}

// send sends a message on the control socket. A full or disconnected pipe drops it: every
// message that matters is repeated (registration, heartbeats) or recovered by the
// dispatcher's failure detection (results of tasks it re-queues).
func (w *worker) send(m protocol.Message) {
	w.frames = m.Append(w.frames[:0])
	if err := zsock.Send(w.ctrl, zmq.DONTWAIT, protocol.Delimiter, w.frames); err != nil && !zsock.IsAgain(err) {
		w.log.Error("sending failed", "type", m.Type(), "err", err)
	}
}

// askModule asks for a module, and again if no answer came by the time a dispatcher is
// declared silent (its answer was lost with a reconnection).
func (w *worker) askModule(hash string) {
	w.asked[hash] = time.Now().Add(w.hbDead)
	w.send(protocol.ModuleRequest{Worker: w.cfg.ID, Hash: hash})
}
