// Package zsock is the ZeroMQ plumbing the dispatcher's hub and the remote workers share:
// sending multipart frames without boxing them, errno tests, poll timeouts, a Mailbox that
// lets any goroutine hand work to the goroutine that owns a socket, and the termination of a
// component's context. The wire format itself is in package protocol, which is plain Go.
//
// Ownership: each component (a hub, a worker) creates one zmq.Context, makes every socket
// of its own in it (its Mailbox included), closes them in its loop goroutine, and ends with
// Terminate, which sends what the sockets still hold (results, hand-backs, BYE) before
// the component returns. Nothing uses ZeroMQ's global context.
package zsock

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// Send sends env and then body as one multipart message.
func Send(s *zmq.Socket, flags zmq.Flag, env, body [][]byte) error {
	n := len(env) + len(body)
	if n == 0 {
		return errors.New("zsock: empty message")
	}
	i := 0
	for _, parts := range [2][][]byte{env, body} {
		for _, p := range parts {
			i++
			fl := flags
			if i < n {
				fl |= zmq.SNDMORE
			}
			if _, err := s.SendBytes(p, fl); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsAgain reports whether err means "would block" (a full pipe, or DONTWAIT with nothing
// to read).
func IsAgain(err error) bool { return zmq.AsErrno(err) == zmq.Errno(syscall.EAGAIN) }

// IsUnreachable reports whether a ROUTER_MANDATORY send found no such peer.
func IsUnreachable(err error) bool { return zmq.AsErrno(err) == zmq.Errno(syscall.EHOSTUNREACH) }

var inprocSeq atomic.Uint64

// Mailbox carries items from any goroutine to the goroutine that owns a socket loop. The
// owner adds Socket() to its zmq.Poller; when it is readable, the owner calls Take.
// Put never blocks and wakes the owner only when the box was empty (wake-ups coalesce).
//
// The inproc PUSH socket that wakes the owner is owned by a goroutine of its own, so
// that every socket keeps a single owner.
type Mailbox[T any] struct {
	mu    sync.Mutex
	items []T

	pull *zmq.Socket // owned by the loop goroutine
	sig  chan struct{}
	stop chan struct{}
	done chan struct{}
	buf  [][]byte
}

// NewMailbox creates a mailbox whose inproc sockets live in zctx (the owner's context, so
// that terminating it accounts for them) and starts its waker goroutine. The caller (the
// loop's goroutine) must Close it before terminating zctx.
func NewMailbox[T any](zctx *zmq.Context) (*Mailbox[T], error) {
	addr := fmt.Sprintf("inproc://faas-mailbox-%d", inprocSeq.Add(1))
	pull, err := zctx.NewSocket(zmq.PULL)
	if err != nil {
		return nil, err
	}
	pull.SetLinger(0)
	if err := pull.Bind(addr); err != nil {
		pull.Close()
		return nil, err
	}
	push, err := zctx.NewSocket(zmq.PUSH)
	if err != nil {
		pull.Close()
		return nil, err
	}
	push.SetLinger(0)
	push.SetSndhwm(4)
	if err := push.Connect(addr); err != nil {
		push.Close()
		pull.Close()
		return nil, err
	}
	m := &Mailbox[T]{pull: pull, sig: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go m.waker(push)
	return m, nil
}

var wakeByte = []byte{1}

func (m *Mailbox[T]) waker(push *zmq.Socket) {
	defer close(m.done)
	defer push.Close()
	for {
		select {
		case <-m.stop:
			return
		case <-m.sig:
			// EAGAIN means wake-ups are already pending: nothing to add.
			push.SendBytes(wakeByte, zmq.DONTWAIT)
		}
	}
}

// Socket is the socket to poll for POLLIN.
func (m *Mailbox[T]) Socket() *zmq.Socket { return m.pull }

// Put adds an item and wakes the owner if needed. Any goroutine may call it, also after Close.
func (m *Mailbox[T]) Put(items ...T) {
	m.mu.Lock()
	wasEmpty := len(m.items) == 0
	m.items = append(m.items, items...)
	m.mu.Unlock()
	if wasEmpty {
		select {
		case m.sig <- struct{}{}:
		default:
		}
	}
}

// Take consumes pending wake-ups and returns the items put since the last Take, appended to
// dst[:0]. Only the owner calls it.
func (m *Mailbox[T]) Take(dst []T) []T {
	for {
		if _, err := m.pull.RecvBytes(zmq.DONTWAIT); err != nil {
			break
		}
	}
	m.mu.Lock()
	dst = append(dst[:0], m.items...)
	clear(m.items)
	m.items = m.items[:0]
	m.mu.Unlock()
	return dst
}

// Close stops the waker and closes the sockets. Only the owner calls it.
func (m *Mailbox[T]) Close() {
	close(m.stop)
	<-m.done
	m.pull.Close()
}

// Until returns the poll timeout until t, rounded up to a whole millisecond (zmq_poll's
// unit, so that a wait shorter than 1ms does not spin): at least 0, at most max.
func Until(t time.Time, max time.Duration) time.Duration {
	d := time.Until(t)
	if d <= 0 {
		return 0
	}
	d = (d + time.Millisecond - 1).Truncate(time.Millisecond)
	return min(d, max)
}

// Terminate terminates a ZeroMQ context whose sockets are all closed: it waits until their
// lingering messages are sent (each socket's LINGER), but no longer than max.
func Terminate(zctx *zmq.Context, max time.Duration) {
	done := make(chan struct{})
	go func() {
		zctx.Term()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(max):
	}
}
