package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/task"
)

// The hub is what pull and push mode share: the ROUTER socket and the goroutine that owns
// it. This file holds its state, its setup and its loop; the other hub files are named for
// what they hold: receive.go (messages from workers), registry.go (workers, heartbeats,
// failure detection), claimer.go (taking tasks only as fast as workers can take them),
// modules.go (serving modules), send.go (sending), shutdown.go (the stop, in order).
//
// Goroutines: the hub loop owns the ROUTER socket and every piece of state below; the
// claimer calls core.claim and hands tasks to the hub through a mailbox; module fetches run
// in short-lived goroutines and report through the same mailbox. The hub never waits on
// Redis, so heartbeats keep flowing during an outage.

// hubEvent is what other goroutines hand the hub.
type hubEvent struct {
	tasks   []task.Task      // claimed for the workers
	module  *protocol.Module // fetched for waiting workers
	removed []string         // worker keys taken off the allow-list
	to      []byte           // module: the one worker to answer (a checked fetch)
	refused bool             // module: the check found no task of it sent to that worker
	cancel  []task.Ref       // cancelled: tell the workers that hold them (cancel.go)
	evict   string           // the hash of a module whose last function was deleted
}

// modeHooks is what differs between pull and push.
type modeHooks interface {
	// request handles a REQUEST_TASK (pull only) from the connection p.
	request(p peer, env [][]byte, m protocol.RequestTask)
	// deliver hands freshly claimed tasks out.
	deliver(ts []task.Task)
	// rebalance orders or cancels claims after the registry changed.
	rebalance()
	// forget drops mode state of a worker that is gone.
	forget(w *remoteWorker)
	// stop answers whatever is held, at the start of shutdown.
	stop()
}

type hub struct {
	c       *core
	cfg     Config
	log     *slog.Logger
	mode    protocol.Mode
	session string
	hooks   modeHooks

	zctx   *zmq.Context
	router *zmq.Socket
	curve  bool       // CURVE on: every message carries its sender's key
	zap    *zsock.ZAP // authenticates CURVE handshakes; closed after the router

	perKey   map[string]int       // registered workers per key
	dropLog  map[string]time.Time // when a peer's dropped messages were last logged
	refusals refusalLog           // the same for handshakes the ZAP handler refused
	box      *zsock.Mailbox[hubEvent]
	poller   *zmq.Poller

	workers   map[string]*remoteWorker
	check     time.Duration // how often checkWorkers runs
	nextCheck time.Time
	liveAt    time.Time // when the registry was last copied for the live registry

	demand  demand       // tasks the workers can take and the claimer has not claimed yet
	transit atomic.Int64 // tasks claimed and not yet taken by the hub
	ready   []task.Task
	readyAt time.Time // when ready last became non-empty

	modules     map[string][]byte   // small cache of module bytes by hash
	moduleBytes int                 // their total size
	fetching    map[string][][]byte // hash → routes of the workers waiting for it
	fetches     sync.WaitGroup      // module fetches in flight
	fetchCtx    context.Context     // cancelled at the end of shutdown
	stopFetches context.CancelFunc

	stopping bool // shutdown has begun: claim nothing, take no new worker
	frames   [][]byte
	env      [][]byte
	events   []hubEvent
}

// bindRetry is how long a port still in use is retried.
const bindRetry = 3 * time.Second

func newHub(c *core, cfg Config, log *slog.Logger, mode protocol.Mode) (*hub, error) {
	var b [6]byte
	rand.Read(b[:])
	h := &hub{
		c: c, cfg: cfg, log: log, mode: mode,
		session:  hex.EncodeToString(b[:]),
		workers:  make(map[string]*remoteWorker),
		perKey:   make(map[string]int),
		dropLog:  make(map[string]time.Time),
		curve:    !cfg.Key.IsZero(),
		demand:   demand{kick: make(chan struct{}, 1)},
		modules:  make(map[string][]byte),
		fetching: make(map[string][][]byte),
		env:      make([][]byte, 2),
	}
	var err error
	// A context of its own: terminating it when the hub returns sends the last BYEs and
	// frees the port before Run returns.
	if h.zctx, err = zmq.NewContext(); err != nil {
		return nil, err
	}
	if h.curve {
		// Before the ROUTER binds: without a handler libzmq lets any key in.
		lim := zsock.ZAPLimit{Burst: 2 * cfg.MaxWorkersPerKey, PerSecond: 2}
		refused := func(key, reason string) {
			c.m.dropped.WithLabelValues(dropHandshake).Inc()
			h.logRefusal(key, reason)
		}
		if h.zap, err = zsock.StartZAP(h.zctx, cfg.Authorized, lim, refused); err != nil {
			h.zctx.Term()
			return nil, err
		}
	}
	fail := func(err error) (*hub, error) {
		if h.router != nil {
			h.router.Close()
		}
		if h.zap != nil {
			h.zap.Close()
		}
		h.zctx.Term()
		return nil, err
	}
	if h.router, err = h.zctx.NewSocket(zmq.ROUTER); err != nil {
		return fail(err)
	}
	h.router.SetLinger(0)
	if err := h.router.SetMaxmsgsize(protocol.MaxMessageBytes); err != nil {
		return fail(err)
	}
	if h.curve {
		if err := zsock.CurveServer(h.router, cfg.Key); err != nil {
			return fail(err)
		}
		cfg.Authorized.OnChange(func(removed []string) {
			if len(removed) > 0 {
				h.box.Put(hubEvent{removed: removed})
			}
		})
	}
	h.router.SetRouterMandatory(1) // a send to a vanished worker fails instead of vanishing
	h.router.SetSndhwm(10000)
	h.router.SetRcvhwm(10000)
	addr := fmt.Sprintf("tcp://%s:%d", cfg.Bind, cfg.Port)
	// ZeroMQ closes sockets asynchronously: a dispatcher restarted in the same process
	// (tests, an embedding program) may find the port still held for a moment.
	for deadline := time.Now().Add(bindRetry); ; {
		err := h.router.Bind(addr)
		if err == nil {
			break
		}
		if zmq.AsErrno(err) != zmq.Errno(syscall.EADDRINUSE) || time.Now().After(deadline) {
			return fail(fmt.Errorf("bind %s: %w", addr, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h.box, err = zsock.NewMailbox[hubEvent](h.zctx); err != nil {
		return fail(err)
	}
	c.setStopper(func(refs []task.Ref) { h.box.Put(hubEvent{cancel: refs}) })
	return h, nil
}

// run serves workers until ctx ends, then shuts down (shutdown.go) and returns.
func (h *hub) run(ctx context.Context) error {
	// Module fetches do not end with ctx: a worker finishing a task during the drain may
	// still need its module. shutdown cancels them.
	h.fetchCtx, h.stopFetches = context.WithCancel(context.WithoutCancel(ctx))
	claimCtx, stopClaiming := context.WithCancel(ctx)
	claimerDone := make(chan struct{})
	go func() { defer close(claimerDone); h.claimer(claimCtx) }()
	waitEvictions := listenEvictions(ctx, h.c.st, h.log, func(hash string) { h.box.Put(hubEvent{evict: hash}) })
	defer waitEvictions()

	h.poller = zmq.NewPoller()
	h.poller.Add(h.router, zmq.POLLIN)
	h.poller.Add(h.box.Socket(), zmq.POLLIN)
	h.log.Info("listening for workers", "bind", h.cfg.Bind, "port", h.cfg.Port, "session", h.session, "curve", h.curve)
	h.check = min(h.cfg.HeartbeatInterval/2, 250*time.Millisecond)
	h.nextCheck = time.Now().Add(h.check)

	h.serve(ctx)
	h.shutdown(stopClaiming, claimerDone)
	return nil
}

// serve runs the hub loop until ctx ends.
func (h *hub) serve(ctx context.Context) {
	stopWake := context.AfterFunc(ctx, func() { h.box.Put(hubEvent{}) }) // wake the loop
	defer stopWake()
	for ctx.Err() == nil {
		h.turn(zsock.Until(h.nextCheck, time.Second))
	}
}

// turn is one pass of the hub loop, waiting at most wait for something to do: handle the
// messages from workers and the events from other goroutines, check the workers when due,
// and (unless stopping) order claims for what the workers can take.
func (h *hub) turn(wait time.Duration) {
	polled, err := h.poller.Poll(wait)
	if err != nil {
		h.log.Error("poll failed", "err", err)
		return
	}
	for _, p := range polled {
		if p.Socket == h.router {
			h.receive()
		}
	}
	h.events = h.box.Take(h.events)
	for i := range h.events {
		h.event(h.events[i])
		h.events[i] = hubEvent{}
	}
	if now := time.Now(); !now.Before(h.nextCheck) {
		h.checkWorkers(now)
		h.nextCheck = now.Add(h.check)
		if h.c.liveSnapshotDue(h.liveAt, now) {
			h.snapshotLive()
			h.liveAt = now
		}
	}
	if !h.stopping {
		h.hooks.rebalance()
	}
}

// event handles what another goroutine handed the hub.
func (h *hub) event(e hubEvent) {
	if len(e.tasks) > 0 {
		h.transit.Add(-int64(len(e.tasks)))
		if h.stopping {
			for _, t := range e.tasks {
				h.c.release(t.Ref())
			}
			return
		}
		h.hooks.deliver(e.tasks)
	}
	switch {
	case e.module != nil && e.to != nil:
		if e.refused {
			h.dropped(peer{route: e.to}, dropNotSent, 1, "module request without a task of that module")
		}
		h.sendModule(e.to, *e.module)
	case e.module != nil:
		h.moduleFetched(*e.module)
	}
	if len(e.removed) > 0 {
		h.keysRemoved(e.removed)
	}
	if len(e.cancel) > 0 {
		h.cancelRemote(e.cancel)
	}
	if e.evict != "" && !h.stopping {
		h.evicted(e.evict)
	}
}
