package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pub/sub listeners. A process holds one subscription per channel and fans messages out in
// memory: one subscription per waiting HTTP client would take one Redis connection each and
// exhaust the pool.
//
// A subscription is checked with a PING after healthEvery without traffic; no PONG within
// another healthEvery means the connection is dead, and the listener subscribes again, with
// a backoff. Messages published while no subscription existed are lost (pub/sub is
// fire-and-forget), so every (re)subscription also wakes everyone up: listeners re-read
// Redis, which holds the truth.

const (
	healthEvery = 2 * time.Second
	backoffMin  = 50 * time.Millisecond
	backoffMax  = 2 * time.Second
)

// Done is one subscription to "<prefix>done", fanned out in process to waiters.
type Done struct {
	s *Store

	mu       sync.Mutex
	watchers map[string]map[*watcher]struct{}
	ready    chan struct{}
	isReady  bool
}

type watcher struct {
	ids []string
	ch  chan string
}

// NewDone returns the fan-out of the done channel. Call Run to start it.
func (s *Store) NewDone() *Done {
	return &Done{s: s, watchers: make(map[string]map[*watcher]struct{}), ready: make(chan struct{})}
}

// Ready is closed once the first subscription is in place (tests use it to know that a
// notification published from now on is heard).
func (d *Done) Ready() <-chan struct{} { return d.ready }

// Run owns the subscription: it subscribes, re-subscribes after Redis outages, and returns
// nil when ctx ends.
func (d *Done) Run(ctx context.Context) error {
	return d.s.listen(ctx, d.s.k.doneChannel(), func() {
		d.mu.Lock()
		if !d.isReady {
			d.isReady = true
			close(d.ready)
		}
		d.mu.Unlock()
		d.wakeAll()
	}, d.deliver)
}

// Watch registers interest in ids. ch receives each id when its task may have become
// terminal: on its notification, and also after a re-subscription (notifications may have
// been lost meanwhile). ch is buffered and never blocks the fan-out. The caller must re-read
// the record after Watch returns (a task that ended before is never announced again), and
// call stop when done.
func (d *Done) Watch(ids []string) (ch <-chan string, stop func()) {
	w := &watcher{ids: ids, ch: make(chan string, len(ids)+1)}
	d.mu.Lock()
	for _, id := range ids {
		set := d.watchers[id]
		if set == nil {
			set = make(map[*watcher]struct{}, 1)
			d.watchers[id] = set
		}
		set[w] = struct{}{}
	}
	d.mu.Unlock()
	var once sync.Once
	return w.ch, func() {
		once.Do(func() {
			d.mu.Lock()
			for _, id := range w.ids {
				if set := d.watchers[id]; set != nil {
					delete(set, w)
					if len(set) == 0 {
						delete(d.watchers, id)
					}
				}
			}
			d.mu.Unlock()
		})
	}
}

// Watching is the number of ids watched (for metrics and tests).
func (d *Done) Watching() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.watchers)
}

func (d *Done) deliver(payload string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.watchers) == 0 {
		return
	}
	for _, id := range strings.Fields(payload) {
		for w := range d.watchers[id] {
			select {
			case w.ch <- id:
			default: // full: the waiter has enough to re-read
			}
		}
	}
}

func (d *Done) wakeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, set := range d.watchers {
		for w := range set {
			select {
			case w.ch <- id:
			default:
			}
		}
	}
}

// ListenTasks subscribes to "faas:tasks" and sends (non-blocking, coalesced) on wake for each
// message until ctx ends; it also sends after each (re)subscription, since tasks may have
// been queued while nobody listened. Re-subscribes after outages. Returns nil at ctx end.
func (s *Store) ListenTasks(ctx context.Context, wake chan<- struct{}) error {
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	return s.listen(ctx, s.k.tasksChannel(), poke, func(string) { poke() })
}

// listen runs subscriptions to channel until ctx ends, calling onSub after each
// subscription is confirmed and onMsg for each message.
func (s *Store) listen(ctx context.Context, channel string, onSub func(), onMsg func(string)) error {
	backoff := backoffMin
	for ctx.Err() == nil {
		subscribed, err := s.listenOnce(ctx, channel, onSub, onMsg)
		if ctx.Err() != nil {
			break
		}
		if subscribed {
			backoff = backoffMin
		}
		slog.Debug("store: subscription lost, subscribing again", "channel", channel, "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, backoffMax)
	}
	return nil
}

func (s *Store) listenOnce(ctx context.Context, channel string, onSub func(), onMsg func(string)) (subscribed bool, err error) {
	sub := s.rdb.Subscribe(ctx)
	defer sub.Close()
	// A blocked read is not interrupted by ctx: closing the subscription is what ends it.
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	defer stop()
	if err := sub.Subscribe(ctx, channel); err != nil {
		return false, err
	}
	pinged := false
	for {
		msg, err := sub.ReceiveTimeout(ctx, healthEvery)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged && subscribed {
				if err := sub.Ping(ctx); err != nil {
					return subscribed, err
				}
				pinged = true
				continue
			}
			return subscribed, err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == channel && !subscribed {
				subscribed = true
				onSub()
			}
		case *redis.Message:
			onMsg(m.Payload)
		case *redis.Pong:
		default:
			return subscribed, fmt.Errorf("store: unexpected pub/sub message %T", msg)
		}
	}
}
