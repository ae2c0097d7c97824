package worker

// This file: the worker's state, the events its task goroutines post, and the module source
// its executor fetches modules through.

import (
	"context"
	"log/slog"
	"sync"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/executor"
	"faas/internal/zsock"
	"faas/sandbox"
	"faas/task"
)

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

// worker is one remote worker. The goroutine running its loop (serve, then stop) owns the
// sockets and the connection state; task goroutines and module fetches talk to it through
// the mailbox, and share only waiters (under mu) with it.
type worker struct {
	cfg Config
	log *slog.Logger
	ex  *executor.Executor
	sb  *sandbox.Sandbox // the executor's: EVICT drops modules from it
	box *zsock.Mailbox[event]

	ctrl *zmq.Socket // DEALER: registration, results, heartbeats, modules (both modes), tasks (push)
	req  *zmq.Socket // REQ: REQUEST_TASK ⇄ NEW_TASK/NO_TASK (pull mode only)

	tasks      sync.WaitGroup // task goroutines
	running    map[string]task.Ref
	queued     []task.Task                        // accepted beyond the slots (Config.Queue), in arrival order
	stops      map[string]context.CancelCauseFunc // a running task's: ends its context (CANCEL)
	registered bool
	session    string
	lastHeard  time.Time
	nextBeat   time.Time // when the next heartbeat (or registration) is due
	hbEvery    time.Duration
	hbDead     time.Duration
	asking     bool                 // a REQUEST_TASK awaits its reply
	askAfter   time.Time            // do not ask before (after a NO_TASK)
	stopping   bool                 // the stop sequence has begun: no new work
	byeAcked   bool                 // the dispatcher answered our BYE (push)
	asked      map[string]time.Time // module hash → when to ask again if no answer came
	token      string               // of the dispatcher's last HEARTBEAT: echoed in ours

	mu      sync.Mutex
	waiters map[string][]chan moduleResult // module hash → executors waiting for it

	routeSecret string      // S of the routing ids "d"+S and "r"+S (protocol.RouteControl)
	monitor     *zmq.Socket // handshake events of ctrl
	failedHS    int         // connections closed during the handshake, in a row (-1: connected)
	hsCounted   bool        // the current connection's failure is counted
	fatal       error       // why the worker must stop (a refused key): Run returns it

	unanswered time.Time     // since when no dispatcher has answered (zero: registered)
	warnAt     time.Duration // the next "no answer" warning is due at this much silence
	warnGap    time.Duration // and the one after it this much later

	frames [][]byte // reusable encoding buffer
	events []event  // reusable mailbox buffer
}

// Module implements executor.ModuleSource: it asks the dispatcher for a module's bytes, once
// per hash however many tasks wait for it.
func (w *worker) Module(ctx context.Context, hash string) ([]byte, error) {
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
