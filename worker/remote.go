package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/executor"
	"faas/internal/zsock"
	"faas/protocol"
	"faas/sandbox"
	"faas/task"
)

// Config configures a remote worker. Every zero value means the documented default.
type Config struct {
	// Mode is protocol.ModePull (ask the dispatcher for work when a slot is free) or ModePush (register a
	// capacity; the dispatcher sends work). Required.
	Mode protocol.Mode
	// Slots is how many tasks run at once; default 1.
	Slots int
	// Endpoint is the dispatcher's address, tcp://HOST:PORT. Required.
	Endpoint string
	// ID names the worker in task records; default "<hostname>-<pid>-<random>".
	ID string
	// HeartbeatInterval is how often the worker heartbeats before the dispatcher's ACK
	// (which then sets both interval and timeout); default 1s.
	HeartbeatInterval time.Duration
}

// ErrBadConfig is returned for a configuration that cannot run.
var ErrBadConfig = errors.New("bad worker configuration")

// drainTimeout bounds how long a stopping worker lets running tasks finish before
// interrupting them and handing them back; with the final flush it stays under 8s.
const drainTimeout = 7 * time.Second

// closeLinger is how long closing the sockets may wait for the last messages to leave.
const closeLinger = 500 * time.Millisecond

// Run connects to a dispatcher and runs tasks until ctx ends. Then it stops asking for work,
// lets running tasks finish for up to 7s, hands back those it interrupted, says BYE and
// returns (within about 8s). A dispatcher that goes away (restart, crash) is waited for:
// the worker registers again when it returns.
func Run(ctx context.Context, sb *sandbox.Sandbox, cfg Config, log *slog.Logger) error {
	if !cfg.Mode.Remote() {
		return fmt.Errorf("%w: mode %q is not pull or push", ErrBadConfig, cfg.Mode)
	}
	if cfg.Endpoint == "" {
		return fmt.Errorf("%w: no dispatcher endpoint", ErrBadConfig)
	}
	if sb == nil {
		return fmt.Errorf("%w: no sandbox", ErrBadConfig)
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 1
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		cfg.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	w := &remote{
		cfg:     cfg,
		log:     log.With("worker", cfg.ID, "mode", cfg.Mode),
		running: make(map[string]task.Ref, cfg.Slots),
		waiters: make(map[string][]chan moduleResult),
		asked:   make(map[string]time.Time),
		hbEvery: cfg.HeartbeatInterval,
		hbDead:  3*cfg.HeartbeatInterval + time.Second,
	}
	w.ex = executor.New(sb, w, cfg.ID)
	return w.run(ctx)
}

type eventKind int

const (
	evOutcome eventKind = iota // a task finished (outcome)
	evStopped                  // a task was interrupted at shutdown (ref)
	evModule                   // an executor wants a module (hash)
	evStop                     // ctx ended
)

type event struct {
	kind    eventKind
	outcome task.Outcome
	ref     task.Ref
	hash    string
}

type moduleResult struct {
	wasm []byte
	err  error
}

// remote is one worker. The goroutine running loop owns both sockets; task goroutines and
// module fetches talk to it through the mailbox.
type remote struct {
	cfg Config
	log *slog.Logger
	ex  *executor.Executor
	box *zsock.Mailbox[event]

	ctrl *zmq.Socket // DEALER: registration, results, heartbeats, modules (both modes), tasks (push)
	req  *zmq.Socket // REQ: REQUEST_TASK ⇄ NEW_TASK/NO_TASK (pull mode only)

	running    map[string]task.Ref
	registered bool
	session    string
	lastHeard  time.Time
	hbEvery    time.Duration
	hbDead     time.Duration
	asking     bool      // a REQUEST_TASK awaits its reply
	askAfter   time.Time // do not ask before (after a NO_TASK)
	stopping   bool
	byeAcked   bool                 // the dispatcher answered our BYE (push)
	asked      map[string]time.Time // module hash → when it was last requested

	mu      sync.Mutex
	waiters map[string][]chan moduleResult // module hash → executors waiting for it

	frames [][]byte // reusable encoding buffer
}

// Module implements ModuleSource: it asks the dispatcher for a module's bytes, once per
// hash however many tasks wait for it.
func (w *remote) Module(ctx context.Context, hash string) ([]byte, error) {
	ch := make(chan moduleResult, 1)
	w.mu.Lock()
	first := len(w.waiters[hash]) == 0
	w.waiters[hash] = append(w.waiters[hash], ch)
	w.mu.Unlock()
	if first {
		w.box.Put(event{kind: evModule, hash: hash})
	}
	select {
	case r := <-ch:
		return r.wasm, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func newSocket(zctx *zmq.Context, t zmq.Type, endpoint string) (*zmq.Socket, error) {
	s, err := zctx.NewSocket(t)
	if err != nil {
		return nil, err
	}
	s.SetLinger(0)
	s.SetReconnectIvl(100 * time.Millisecond)
	s.SetReconnectIvlMax(time.Second)
	if t == zmq.REQ {
		// A request whose reply is lost (dispatcher restart) must not wedge the socket.
		s.SetReqRelaxed(1)
		s.SetReqCorrelate(1)
	}
	if err := s.Connect(endpoint); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect %s: %w", endpoint, err)
	}
	return s, nil
}

func (w *remote) run(ctx context.Context) (err error) {
	// A context of its own: terminating it at exit waits (up to closeLinger) until the last
	// results, hand-backs and BYE have left, whatever else the process does with ZeroMQ.
	zctx, err := zmq.NewContext()
	if err != nil {
		return err
	}
	defer zsock.Terminate(zctx, 2*closeLinger)
	if w.box, err = zsock.NewMailbox[event](zctx); err != nil {
		return err
	}
	defer w.box.Close()
	if w.ctrl, err = newSocket(zctx, zmq.DEALER, w.cfg.Endpoint); err != nil {
		return err
	}
	poller := zmq.NewPoller()
	poller.Add(w.ctrl, zmq.POLLIN)
	poller.Add(w.box.Socket(), zmq.POLLIN)
	if w.cfg.Mode == protocol.ModePull {
		if w.req, err = newSocket(zctx, zmq.REQ, w.cfg.Endpoint); err != nil {
			w.ctrl.Close()
			return err
		}
		poller.Add(w.req, zmq.POLLIN)
	}

	// Tasks run under runCtx, which outlives ctx by up to drainTimeout.
	runCtx, interrupt := context.WithCancel(context.WithoutCancel(ctx))
	defer interrupt()
	stopWatch := context.AfterFunc(ctx, func() { w.box.Put(event{kind: evStop}) })
	defer stopWatch()

	w.log.Info("worker started", "endpoint", w.cfg.Endpoint, "slots", w.cfg.Slots)
	var tasks sync.WaitGroup
	var events []event
	var stopStart, stopDeadline, hardDeadline time.Time
	nextBeat := time.Now()
	for {
		now := time.Now()
		if w.registered && now.Sub(w.lastHeard) > w.hbDead {
			w.log.Warn("dispatcher silent; registering again", "silent", now.Sub(w.lastHeard).Round(time.Millisecond))
			w.registered = false
			nextBeat = now
		}
		if !now.Before(nextBeat) {
			w.beat(now)
			nextBeat = now.Add(w.hbEvery)
		}
		if w.cfg.Mode == protocol.ModePull && w.registered && !w.stopping && !w.asking && !now.Before(w.askAfter) {
			if free := w.cfg.Slots - len(w.running); free > 0 {
				w.ask(free)
			}
		}
		if w.stopping {
			// The dispatcher answers our BYE (push: with BYE on this connection, after any
			// NEW_TASK it sent before reading ours, which we then hand back; pull: a held
			// request gets NO_TASK). Wait for that briefly, unless the dispatcher is gone.
			awaiting := (w.asking || w.cfg.Mode == protocol.ModePush && !w.byeAcked) && w.registered && now.Before(stopStart.Add(time.Second))
			if len(w.running) == 0 && !awaiting {
				break
			}
			if hardDeadline.IsZero() && now.After(stopDeadline) {
				w.log.Warn("running tasks did not finish in time; interrupting and handing them back", "tasks", len(w.running))
				interrupt()
				hardDeadline = now.Add(time.Second)
			}
			if !hardDeadline.IsZero() && now.After(hardDeadline) {
				if len(w.running) > 0 {
					w.log.Error("tasks still held at exit; the dispatcher will re-run them", "tasks", len(w.running))
				}
				break
			}
		}

		wait := zsock.Until(nextBeat, time.Second)
		if !w.askAfter.IsZero() && w.askAfter.After(now) {
			wait = min(wait, zsock.Until(w.askAfter, time.Second))
		}
		if w.stopping {
			wait = min(wait, 100*time.Millisecond)
		}
		polled, err := poller.Poll(wait)
		if err != nil {
			w.log.Error("poll failed", "err", err)
			continue
		}
		for _, p := range polled {
			switch p.Socket {
			case w.ctrl:
				w.drain(w.ctrl, true, runCtx, &tasks)
			case w.req:
				w.drain(w.req, false, runCtx, &tasks)
			}
		}
		events = w.box.Take(events)
		if len(events) > 0 {
			if w.handleEvents(events) && !w.stopping {
				w.stopping = true
				stopStart = time.Now()
				stopDeadline = stopStart.Add(drainTimeout)
				w.log.Info("stopping: finishing running tasks", "tasks", len(w.running))
				w.send(protocol.Bye{Sender: w.cfg.ID})
			}
		}
	}
	w.send(protocol.Bye{Sender: w.cfg.ID})
	w.ctrl.SetLinger(closeLinger)
	w.ctrl.Close()
	if w.req != nil {
		w.req.Close()
	}
	interrupt()
	done := make(chan struct{})
	go func() { tasks.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	w.log.Info("worker stopped")
	return nil
}

// beat sends a heartbeat, or a registration while the dispatcher has not acknowledged us.
// It also asks again for modules whose answer is overdue.
func (w *remote) beat(now time.Time) {
	if !w.registered {
		if !w.stopping {
			w.send(protocol.Registration{Worker: w.cfg.ID, Mode: w.cfg.Mode, Capacity: w.cfg.Slots, Running: len(w.running)})
		}
		return
	}
	held := make([]task.Ref, 0, len(w.running))
	for _, r := range w.running {
		held = append(held, r)
	}
	w.send(protocol.Heartbeat{Sender: w.cfg.ID, Held: held})
	for hash, at := range w.asked {
		if now.Sub(at) > w.hbDead {
			w.askModule(hash)
		}
	}
}

func (w *remote) ask(n int) {
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
func (w *remote) send(m protocol.Message) {
	w.frames = m.Append(w.frames[:0])
	if err := zsock.Send(w.ctrl, zmq.DONTWAIT, protocol.Delimiter, w.frames); err != nil && !zsock.IsAgain(err) {
		w.log.Error("sending failed", "type", m.Type(), "err", err)
	}
}

func (w *remote) askModule(hash string) {
	w.asked[hash] = time.Now()
	w.send(protocol.ModuleRequest{Worker: w.cfg.ID, Hash: hash})
}

// drain reads every message waiting on s.
func (w *remote) drain(s *zmq.Socket, ctrl bool, runCtx context.Context, tasks *sync.WaitGroup) {
	for i := 0; i < 1024; i++ {
		frames, err := s.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if !zsock.IsAgain(err) {
				w.log.Error("receive failed", "err", err)
			}
			return
		}
		if ctrl {
			if len(frames) == 0 || len(frames[0]) != 0 {
				w.log.Warn("dropping a message without its delimiter", "frames", len(frames))
				continue
			}
			frames = frames[1:]
		}
		m, err := protocol.Decode(frames)
		if err != nil {
			w.log.Warn("dropping a malformed message", "err", err)
			if !ctrl {
				w.asking = false
			}
			continue
		}
		w.lastHeard = time.Now()
		w.handle(m, ctrl, runCtx, tasks)
		if !ctrl {
			return // a REQ socket holds one reply at a time
		}
	}
}

func (w *remote) handle(m protocol.Message, ctrl bool, runCtx context.Context, tasks *sync.WaitGroup) {
	if !ctrl {
		w.asking = false
	}
	switch m := m.(type) {
	case protocol.Ack:
		// A second ACK of the same session (we registered twice before the first came
		// back) changes nothing: in particular a held request stays held.
		fresh := !w.registered || m.Session != w.session
		w.registered, w.session = true, m.Session
		if m.HeartbeatInterval > 0 {
			w.hbEvery = m.HeartbeatInterval
		}
		if m.HeartbeatTimeout > 0 {
			w.hbDead = m.HeartbeatTimeout
		}
		if !fresh {
			return
		}
		w.log.Info("registered", "session", m.Session)
		w.askAfter = time.Time{}
		// A request held by a dispatcher that went away gets no answer; ask again
		// (REQ_RELAXED allows it; REQ_CORRELATE drops a stale reply to the old one).
		w.asking = false
		for hash := range w.asked {
			w.askModule(hash)
		}
	case protocol.NewTask:
		w.start(m.Tasks, runCtx, tasks)
	case protocol.NoTask:
		w.askAfter = time.Now().Add(w.hbEvery)
	case protocol.Heartbeat:
	case protocol.Module:
		delete(w.asked, m.Hash)
		w.mu.Lock()
		waiters := w.waiters[m.Hash]
		delete(w.waiters, m.Hash)
		w.mu.Unlock()
		r := moduleResult{wasm: m.Wasm}
		if m.Err != "" {
			r = moduleResult{err: fmt.Errorf("dispatcher: %s", m.Err)}
		}
		for _, ch := range waiters {
			ch <- r
		}
	case protocol.Bye:
		if w.stopping {
			// The answer to our BYE: nothing more is on its way. Stay registered, so
			// heartbeats go on while running tasks finish.
			w.byeAcked = true
			return
		}
		w.log.Info("dispatcher is stopping; will register again when it returns")
		w.registered = false
	case protocol.Error:
		switch m.Code {
		case protocol.CodeUnknownWorker:
			w.log.Info("dispatcher does not know this worker; registering again")
			w.registered = false
			w.send(protocol.Registration{Worker: w.cfg.ID, Mode: w.cfg.Mode, Capacity: w.cfg.Slots, Running: len(w.running)})
		default:
			w.log.Error("dispatcher refused a message", "code", m.Code, "text", m.Text)
			w.askAfter = time.Now().Add(w.hbEvery)
		}
	default:
		w.log.Warn("dropping an unexpected message", "type", m.Type())
	}
}

// start runs tasks in their own goroutines; tasks beyond the free slots, or sent while
// stopping, are handed back.
func (w *remote) start(ts []task.Task, runCtx context.Context, tasks *sync.WaitGroup) {
	var back []task.Ref
	for _, t := range ts {
		if _, dup := w.running[t.ID]; dup || w.stopping || len(w.running) >= w.cfg.Slots {
			// dup: a new attempt of a task whose previous attempt still runs here (the
			// dispatcher gave up on it); the old attempt's result will be fenced off.
			back = append(back, t.Ref())
			continue
		}
		w.running[t.ID] = t.Ref()
		tasks.Add(1)
		go func(t task.Task) {
			defer tasks.Done()
			out, err := w.ex.Execute(runCtx, t)
			if err != nil {
				w.box.Put(event{kind: evStopped, ref: t.Ref()})
				return
			}
			w.box.Put(event{kind: evOutcome, outcome: out})
		}(t)
	}
	if len(back) > 0 {
		w.log.Warn("handing back tasks beyond capacity", "tasks", len(back))
		w.send(protocol.Release{Worker: w.cfg.ID, Refs: back})
	}
}

// handleEvents sends the outcomes and hand-backs of one batch of events; it reports whether
// a stop was asked.
func (w *remote) handleEvents(events []event) (stop bool) {
	var outs []task.Outcome
	var back []task.Ref
	for _, e := range events {
		switch e.kind {
		case evOutcome:
			if w.running[e.outcome.ID] == e.outcome.Ref {
				delete(w.running, e.outcome.ID)
			}
			outs = append(outs, e.outcome)
		case evStopped:
			if w.running[e.ref.ID] == e.ref {
				delete(w.running, e.ref.ID)
			}
			back = append(back, e.ref)
		case evModule:
			w.askModule(e.hash)
		case evStop:
			stop = true
		}
	}
	if len(outs) > 0 {
		w.send(protocol.ResultReady{Worker: w.cfg.ID, Outcomes: outs})
	}
	if len(back) > 0 {
		w.send(protocol.Release{Worker: w.cfg.ID, Refs: back})
	}
	return stop
}
