package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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

// This file is what pull and push mode share: the ROUTER socket and the goroutine that owns
// it (the hub), the registry of workers, heartbeats and failure detection, serving modules,
// and the claimer that takes tasks from the queue only as fast as workers can take them.
//
// Goroutines: the hub loop owns the ROUTER socket and every piece of state below; the
// claimer calls core.claim and hands tasks to the hub through a mailbox; module fetches run
// in short-lived goroutines and report through the same mailbox. The hub never waits on
// Redis, so heartbeats keep flowing during an outage.

// flight is a task a worker holds, as the dispatcher sent it.
type flight struct {
	ref    task.Ref
	sentAt time.Time
}

// remoteWorker is the registry entry of one worker.
type remoteWorker struct {
	id        string
	route     []byte // ROUTER identity of the worker's control (DEALER) socket
	capacity  int
	inflight  map[string]flight // task id → the attempt we sent it
	foreign   int               // tasks it runs that we did not send (from before a restart)
	lastHeard time.Time
	draining  bool         // said BYE: send it nothing more
	held      *heldRequest // pull mode: its REQUEST_TASK awaiting tasks
}

func (w *remoteWorker) load() int { return len(w.inflight) + w.foreign }

// heldRequest is a pull worker's REQUEST_TASK that waits for tasks.
type heldRequest struct {
	w    *remoteWorker
	env  [][]byte // REQ envelope to answer on
	want int
}

// hubEvent is what other goroutines hand the hub.
type hubEvent struct {
	tasks  []task.Task      // claimed for the workers
	module *protocol.Module // fetched for waiting workers
}

// modeHooks is what differs between pull and push.
type modeHooks interface {
	// request handles a REQUEST_TASK (pull only).
	request(env [][]byte, m protocol.RequestTask)
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
	box    *zsock.Mailbox[hubEvent]

	workers map[string]*remoteWorker
	demand  demand       // tasks the workers can take and the claimer has not claimed yet
	transit atomic.Int64 // tasks claimed and not yet taken by the hub
	ready   []task.Task
	readyAt time.Time // when ready last became non-empty

	modules     map[string][]byte   // small cache of module bytes by hash
	moduleBytes int                 // their total size
	fetching    map[string][][]byte // hash → routes of the workers waiting for it
	fetches     sync.WaitGroup      // module fetches in flight
	fetchCtx    context.Context     // cancelled when the hub returns

	stopping bool
	frames   [][]byte
	env      [][]byte
	events   []hubEvent
}

// closeLinger is how long closing the ROUTER may wait for the last messages to leave.
const closeLinger = 500 * time.Millisecond

// bindRetry is how long a port still in use is retried.
const bindRetry = 3 * time.Second

// claimTimeout bounds one claim's wait on Redis.
const claimTimeout = 2 * time.Second

// moduleCacheSize and moduleCacheBytes bound the modules the hub keeps in memory.
const (
	moduleCacheSize  = 64
	moduleCacheBytes = 128 << 20
)

// readyHold is how long claimed tasks nobody asked for (a worker vanished while they were
// being claimed) wait for another worker before going back to the queue.
const readyHold = time.Second

func newHub(c *core, cfg Config, log *slog.Logger, mode protocol.Mode) (*hub, error) {
	var b [6]byte
	rand.Read(b[:])
	h := &hub{
		c: c, cfg: cfg, log: log, mode: mode,
		session:  hex.EncodeToString(b[:]),
		workers:  make(map[string]*remoteWorker),
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
	if h.router, err = h.zctx.NewSocket(zmq.ROUTER); err != nil {
		h.zctx.Term()
		return nil, err
	}
	h.router.SetLinger(0)
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
			h.router.Close()
			h.zctx.Term()
			return nil, fmt.Errorf("bind %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h.box, err = zsock.NewMailbox[hubEvent](h.zctx); err != nil {
		h.router.Close()
		h.zctx.Term()
		return nil, err
	}
	return h, nil
}

// run is the hub loop: until ctx ends, then the shutdown: stop claiming, tell workers, wait
// up to DrainTimeout for the results of tasks they hold, hand the rest back.
func (h *hub) run(ctx context.Context) error {
	defer zsock.Terminate(h.zctx, time.Second)
	defer func() {
		h.router.SetLinger(closeLinger)
		h.router.Close()
	}()
	defer h.box.Close()
	var stopFetches context.CancelFunc
	h.fetchCtx, stopFetches = context.WithCancel(context.WithoutCancel(ctx))
	defer h.fetches.Wait()
	defer stopFetches()

	claimCtx, stopClaiming := context.WithCancel(ctx)
	defer stopClaiming()
	claimerDone := make(chan struct{})
	go func() { defer close(claimerDone); h.claimer(claimCtx) }()
	stopWatch := context.AfterFunc(ctx, func() { h.box.Put(hubEvent{}) }) // wake the loop
	defer stopWatch()

	poller := zmq.NewPoller()
	poller.Add(h.router, zmq.POLLIN)
	poller.Add(h.box.Socket(), zmq.POLLIN)
	h.log.Info("listening for workers", "bind", h.cfg.Bind, "port", h.cfg.Port, "session", h.session)

	check := min(h.cfg.HeartbeatInterval/2, 250*time.Millisecond)
	nextCheck := time.Now().Add(check)
	var drainUntil time.Time
	for {
		if ctx.Err() != nil && !h.stopping {
			h.stopping = true
			stopClaiming()
			drainUntil = time.Now().Add(h.cfg.DrainTimeout)
			h.beginStop()
		}
		if h.stopping {
			select {
			case <-claimerDone:
				if h.inflight() == 0 {
					h.finalStop(claimerDone)
					return nil
				}
			default:
			}
			if time.Now().After(drainUntil) {
				h.log.Warn("workers did not return results in time; handing their tasks back", "tasks", h.inflight())
				h.finalStop(claimerDone)
				return nil
			}
		}
		wait := zsock.Until(nextCheck, time.Second)
		if h.stopping {
			wait = min(wait, 50*time.Millisecond)
		}
		polled, err := poller.Poll(wait)
		if err != nil {
			h.log.Error("poll failed", "err", err)
			continue
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
		if now := time.Now(); !now.Before(nextCheck) {
			h.checkWorkers(now)
			nextCheck = now.Add(check)
		}
		if !h.stopping {
			h.hooks.rebalance()
		}
	}
}

func (h *hub) inflight() int {
	n := 0
	for _, w := range h.workers {
		n += len(w.inflight)
	}
	return n
}

// beginStop tells every worker the dispatcher stops and answers held requests.
func (h *hub) beginStop() {
	h.log.Info("stopping: no new work; waiting for results", "tasks", h.inflight(), "workers", len(h.workers))
	h.hooks.stop()
	for _, w := range h.workers {
		h.send(w, protocol.Bye{Sender: h.session})
	}
	h.releaseReady()
}

// finalStop hands back everything still held: tasks at workers, tasks claimed late.
func (h *hub) finalStop(claimerDone <-chan struct{}) {
	<-claimerDone
	for _, e := range h.box.Take(nil) {
		if len(e.tasks) > 0 {
			h.ready = append(h.ready, e.tasks...)
		}
	}
	h.releaseReady()
	for _, w := range h.workers {
		for _, f := range w.inflight {
			h.c.release(f.ref)
		}
		w.inflight = nil
	}
}

func (h *hub) releaseReady() {
	for _, t := range h.ready {
		h.c.release(t.Ref())
	}
	clear(h.ready)
	h.ready = h.ready[:0]
}

// demand is how many tasks the hub wants claimed. The hub adds and cancels; the claimer
// subtracts what it claimed. It never goes below zero: tasks claimed for a cancelled want
// wait in the hub's ready list for the next worker.
type demand struct {
	mu   sync.Mutex
	n    int
	kick chan struct{}
}

func (d *demand) add(k int) {
	if k == 0 {
		return
	}
	d.mu.Lock()
	d.n = max(0, d.n+k)
	d.mu.Unlock()
	if k > 0 {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

func (d *demand) get() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// claimer takes tasks from the queue as the hub wants them, never more.
func (h *hub) claimer(ctx context.Context) {
	idle := false // the queue was empty at the last claim
	poll := time.NewTicker(h.cfg.Poll)
	defer poll.Stop()
	backoff := 50 * time.Millisecond
	for {
		if n := min(h.demand.get(), h.cfg.ClaimBatch); n > 0 && !idle && ctx.Err() == nil {
			// Not cancelled by ctx: a claim cut short after Redis ran it would strand its
			// tasks until their leases expire. Bounded, so that a stop during a Redis outage
			// still ends within DrainTimeout plus this.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
			ts, err := h.c.claim(cctx, n)
			cancel()
			if err != nil {
				h.log.Warn("claiming tasks failed; retrying", "err", err, "backoff", backoff)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			backoff = 50 * time.Millisecond
			if len(ts) > 0 {
				// transit first: the hub may count a task twice for a moment, never zero times.
				h.transit.Add(int64(len(ts)))
				h.demand.add(-len(ts))
				h.box.Put(hubEvent{tasks: ts})
			}
			idle = len(ts) < n
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-h.demand.kick:
			idle = false
		case <-h.c.woken():
			idle = false
		case <-poll.C:
			idle = false
		}
	}
}

// order asks the claimer for n more tasks (n < 0: fewer).
func (h *hub) order(n int) {
	if !h.stopping {
		h.demand.add(n)
	}
}

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
	if e.module != nil {
		h.moduleFetched(*e.module)
	}
}

// keepReady holds claimed tasks no worker can take right now.
func (h *hub) keepReady(ts []task.Task) {
	if len(ts) == 0 {
		return
	}
	if len(h.ready) == 0 {
		h.readyAt = time.Now()
	}
	h.ready = append(h.ready, ts...)
}

// takeReady removes up to n tasks from ready.
func (h *hub) takeReady(n int) []task.Task {
	n = min(n, len(h.ready))
	if n == 0 {
		return nil
	}
	ts := make([]task.Task, n)
	copy(ts, h.ready)
	rest := copy(h.ready, h.ready[n:])
	clear(h.ready[rest:])
	h.ready = h.ready[:rest]
	return ts
}

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
		if w != nil && w.draining && len(w.inflight) == 0 {
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
		if w != nil && w.draining && len(w.inflight) == 0 {
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
		if !w.draining {
			h.reply(env, protocol.Bye{Sender: h.session})
		}
		w.draining = true
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

func (h *hub) register(env [][]byte, m protocol.Registration, now time.Time) {
	if m.Mode != h.mode {
		h.log.Warn("refusing a worker of the other mode", "worker", m.Worker, "its_mode", m.Mode)
		h.reply(env, protocol.Error{Code: protocol.CodeMalformed, Text: fmt.Sprintf("this dispatcher runs %s mode, not %s", h.mode, m.Mode)})
		return
	}
	if m.Worker == "" || m.Capacity <= 0 {
		h.reply(env, protocol.Error{Code: protocol.CodeMalformed, Text: "registration needs a worker id and a capacity"})
		return
	}
	if h.stopping {
		// A worker told BYE asks to register again until we are back: it is alive, so it
		// must not be declared lost during the drain (that charged its tasks an attempt);
		// what it still holds at the end is handed back uncharged by finalStop.
		if w := h.workers[m.Worker]; w != nil {
			w.lastHeard = now
		}
		h.reply(env, protocol.Bye{Sender: h.session})
		return
	}
	w := h.workers[m.Worker]
	if w == nil {
		w = &remoteWorker{id: m.Worker, inflight: make(map[string]flight)}
		h.workers[m.Worker] = w
		h.log.Info("worker registered", "worker", m.Worker, "capacity", m.Capacity, "running", m.Running)
	}
	w.route = append(w.route[:0], env[0]...)
	w.capacity = m.Capacity
	w.foreign = max(0, m.Running-len(w.inflight))
	w.lastHeard = now
	w.draining = false
	h.reply(env, protocol.Ack{Session: h.session, HeartbeatInterval: h.cfg.HeartbeatInterval, HeartbeatTimeout: h.cfg.HeartbeatTimeout})
}

// known returns the registered worker id, refreshing when it was last heard and (for
// messages on its control socket) its route.
func (h *hub) known(env [][]byte, id string, now time.Time) *remoteWorker {
	w := h.workers[id]
	if w == nil {
		return nil
	}
	w.lastHeard = now
	if len(env) == 2 { // a DEALER's envelope: [identity][delimiter]
		w.route = append(w.route[:0], env[0]...)
	}
	return w
}

// reconcile compares what a worker says it holds with what we sent it: a task sent long
// enough ago that the worker does not hold was lost on the way (a reply dropped by a
// reconnect); tasks it holds that we did not send count against its capacity.
func (h *hub) reconcile(w *remoteWorker, held []task.Ref, now time.Time) {
	holds := make(map[string]int, len(held))
	for _, r := range held {
		holds[r.ID] = r.Attempt
	}
	foreign := 0
	for _, r := range held {
		if f, ok := w.inflight[r.ID]; !ok || f.ref.Attempt != r.Attempt {
			foreign++
		}
	}
	w.foreign = foreign
	for id, f := range w.inflight {
		if a, ok := holds[id]; (!ok || a != f.ref.Attempt) && now.Sub(f.sentAt) > h.cfg.HeartbeatTimeout {
			h.log.Warn("worker does not hold a task sent to it; re-queueing", "worker", w.id, "task_id", id)
			delete(w.inflight, id)
			h.c.lost(f.ref)
		}
	}
}

// checkWorkers declares dead the workers silent for HeartbeatTimeout, and hands back
// claimed tasks nobody took.
func (h *hub) checkWorkers(now time.Time) {
	for _, w := range h.workers {
		if now.Sub(w.lastHeard) > h.cfg.HeartbeatTimeout {
			h.log.Warn("worker lost: no heartbeat", "worker", w.id, "silent", now.Sub(w.lastHeard).Round(time.Millisecond), "tasks", len(w.inflight))
			for _, f := range w.inflight {
				h.c.lost(f.ref)
			}
			w.inflight = nil
			h.forget(w)
		}
	}
	if len(h.ready) > 0 && now.Sub(h.readyAt) > readyHold {
		h.releaseReady()
	}
}

// forget removes a worker from the registry (its tasks already finished or handled).
func (h *hub) forget(w *remoteWorker) {
	h.hooks.forget(w)
	delete(h.workers, w.id)
}

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

// moduleRequested answers from the cache or starts one fetch per hash.
func (h *hub) moduleRequested(env [][]byte, m protocol.ModuleRequest) {
	if wasm, ok := h.modules[m.Hash]; ok {
		h.reply(env, protocol.Module{Hash: m.Hash, Wasm: wasm})
		return
	}
	waiting, busy := h.fetching[m.Hash]
	h.fetching[m.Hash] = append(waiting, append([]byte(nil), env[0]...))
	if busy {
		return
	}
	h.fetches.Add(1)
	go func(hash string) {
		defer h.fetches.Done()
		ctx, cancel := context.WithTimeout(h.fetchCtx, 10*time.Second)
		defer cancel()
		wasm, err := h.c.st.Module(ctx, hash)
		mod := &protocol.Module{Hash: hash, Wasm: wasm}
		if err != nil {
			mod.Err = err.Error()
		}
		h.box.Put(hubEvent{module: mod})
	}(m.Hash)
}

func (h *hub) moduleFetched(m protocol.Module) {
	if m.Err == "" {
		for k, b := range h.modules { // make room: drop any, until it fits
			if len(h.modules) < moduleCacheSize && h.moduleBytes+len(m.Wasm) <= moduleCacheBytes {
				break
			}
			delete(h.modules, k)
			h.moduleBytes -= len(b)
		}
		if len(m.Wasm) <= moduleCacheBytes {
			h.modules[m.Hash] = m.Wasm
			h.moduleBytes += len(m.Wasm)
		}
	} else {
		h.log.Error("fetching a module for workers failed", "hash", m.Hash, "err", m.Err)
	}
	for _, route := range h.fetching[m.Hash] {
		h.env[0], h.env[1] = route, nil
		h.reply(h.env, m)
	}
	delete(h.fetching, m.Hash)
}
