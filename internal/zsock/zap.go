package zsock

// This file: the ZAP handler (ZeroMQ RFC 27) that decides which CURVE clients may connect.
//
// Why our own: pebbe/zmq4's AuthStart serves only ZeroMQ's default context, and libzmq looks
// for the handler at inproc://zeromq.zap.01 in the context of the socket being connected to.
// The hub makes its sockets in a context of its own, so its handler must live there. And
// libzmq lets every CURVE client in when no handler is bound: StartZAP is called before the
// server socket binds, and the handler is closed only after it.

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"
)

const zapEndpoint = "inproc://zeromq.zap.01"

// AllowList is the set of public keys allowed to connect. It is safe for concurrent use:
// the CLI replaces it on SIGHUP while the handler and the hub read it.
type AllowList struct {
	keys     atomic.Pointer[map[string]bool]
	mu       sync.Mutex
	onChange []func(removed []string)
}

// NewAllowList returns an allow-list holding keys.
func NewAllowList(keys []string) *AllowList {
	a := &AllowList{}
	a.store(keys)
	return a
}

func (a *AllowList) store(keys []string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	old := a.keys.Swap(&m)
	if old == nil {
		return nil
	}
	return *old
}

// Allowed reports whether key is on the list.
func (a *AllowList) Allowed(key string) bool { return (*a.keys.Load())[key] }

// Len is the number of keys on the list.
func (a *AllowList) Len() int { return len(*a.keys.Load()) }

// Set replaces the list and tells the OnChange callbacks which keys were removed.
func (a *AllowList) Set(keys []string) (removed []string) {
	old := a.store(keys)
	now := *a.keys.Load()
	for k := range old {
		if !now[k] {
			removed = append(removed, k)
		}
	}
	a.mu.Lock()
	fs := append([]func([]string){}, a.onChange...)
	a.mu.Unlock()
	for _, f := range fs {
		f(removed)
	}
	return removed
}

// OnChange registers f to be called (from the goroutine calling Set) after every Set.
func (a *AllowList) OnChange(f func(removed []string)) {
	a.mu.Lock()
	a.onChange = append(a.onChange, f)
	a.mu.Unlock()
}

// ZAP is a running ZAP handler. One goroutine owns its socket.
type ZAP struct {
	stop chan struct{}
	done chan struct{}
}

// ZAPLimit bounds how fast one key may open connections: a bucket of Burst handshakes,
// refilled at PerSecond. A key over it is refused until the bucket refills, so one
// authorized key cannot exhaust the dispatcher's connections or CPU with handshakes.
type ZAPLimit struct {
	Burst     int
	PerSecond float64
}

// StartZAP binds a ZAP handler in zctx that accepts the CURVE clients whose key is on
// allow (user id: the key itself, which the receiver reads as the "User-Id" property of
// every message) and refuses any other mechanism or key. refused, if not nil, is called
// (from the handler's goroutine) for every refusal, with the key and the reason.
func StartZAP(zctx *zmq.Context, allow *AllowList, lim ZAPLimit, refused func(key, reason string)) (*ZAP, error) {
	z := &ZAP{stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go z.loop(zctx, allow, lim, refused, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return z, nil
}

// Close stops the handler and closes its socket. Close the sockets it guards first: with
// no handler bound libzmq would let every client in.
func (z *ZAP) Close() {
	close(z.stop)
	<-z.done
}

// zapCheck is how often the handler's goroutine looks at its stop channel while idle.
const zapCheck = 100 * time.Millisecond

type bucket struct {
	tokens float64
	at     time.Time
}

func (z *ZAP) loop(zctx *zmq.Context, allow *AllowList, lim ZAPLimit, refused func(string, string), ready chan<- error) {
	defer close(z.done)
	// A ROUTER, not a REP: a request the handler cannot parse is dropped without wedging
	// a lockstep socket.
	s, err := zctx.NewSocket(zmq.ROUTER)
	if err != nil {
		ready <- err
		return
	}
	defer s.Close()
	s.SetLinger(0)
	if err := s.Bind(zapEndpoint); err != nil {
		ready <- fmt.Errorf("binding the ZAP handler: %w", err)
		return
	}
	ready <- nil
	buckets := make(map[string]*bucket)
	poller := zmq.NewPoller()
	poller.Add(s, zmq.POLLIN)
	for {
		select {
		case <-z.stop:
			return
		default:
		}
		if p, err := poller.Poll(zapCheck); err != nil || len(p) == 0 {
			continue
		}
		msg, err := s.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			continue
		}
		// [route][empty] version, request id, domain, address, identity, mechanism, credentials...
		if len(msg) < 8 || len(msg[1]) != 0 || string(msg[2]) != "1.0" {
			continue
		}
		reqID, mech := msg[3], string(msg[7])
		status, text, user := "400", "mechanism not allowed", ""
		key := ""
		if mech == "CURVE" && len(msg) == 9 && len(msg[8]) == 32 {
			key = zmq.Z85encode(string(msg[8]))
			switch {
			case !allow.Allowed(key):
				text = "key not authorized"
			case !take(buckets, key, lim, time.Now()):
				status, text = "300", "too many connections from this key; retry later"
			default:
				status, text, user = "200", "OK", key
			}
		}
		if status != "200" && refused != nil {
			refused(key, text)
		}
		Send(s, 0, [][]byte{msg[0], nil}, [][]byte{[]byte("1.0"), reqID, []byte(status), []byte(text), []byte(user), nil})
	}
}

// take spends one handshake of key's bucket, if it has one.
func take(buckets map[string]*bucket, key string, lim ZAPLimit, now time.Time) bool {
	if lim.Burst <= 0 {
		return true
	}
	b := buckets[key]
	if b == nil {
		if len(buckets) > 4096 { // keys come off a bounded allow-list; keep the map bounded anyway
			clear(buckets)
		}
		b = &bucket{tokens: float64(lim.Burst), at: now}
		buckets[key] = b
	}
	b.tokens = min(float64(lim.Burst), b.tokens+now.Sub(b.at).Seconds()*lim.PerSecond)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
