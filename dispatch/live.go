package dispatch

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"faas/store"
)

// The dispatcher's entry in the live registry (store/live.go): written every
// HeartbeatInterval with a TTL of HeartbeatTimeout, so that GET /workers and /healthz see a
// killed dispatcher vanish within a few heartbeats; taken out at once by a clean stop.

// liveState is what the publisher reads: counters of local mode, the hub's snapshot of its
// workers in remote modes. Any goroutine may update it.
type liveState struct {
	started time.Time
	running atomic.Int64                // local mode: tasks in the sandbox now
	done    atomic.Int64                // outcomes handed to the writer, every mode
	workers atomic.Pointer[liveWorkers] // remote modes: set by the hub loop
}

// liveWorkers is a snapshot of a hub's workers.
type liveWorkers struct {
	slots, running int
	list           []store.LiveWorker
}

// liveSnapshotDue bounds how often the hub copies its registry for the publisher: at most
// twice per heartbeat, since the publisher writes once per heartbeat.
func (c *core) liveSnapshotDue(last, now time.Time) bool {
	return now.Sub(last) >= c.cfg.HeartbeatInterval/2
}

func (c *core) liveEntry(now time.Time) store.Dispatcher {
	d := store.Dispatcher{
		ID: c.cfg.Owner, Mode: string(c.cfg.Mode), Version: c.cfg.Version,
		StartedAt: c.live.started, HeardAt: now, Done: c.live.done.Load(),
	}
	if c.cfg.Mode.Remote() {
		d.Address = fmt.Sprintf("%s:%d", c.cfg.Bind, c.cfg.Port)
		if w := c.live.workers.Load(); w != nil {
			d.Slots, d.Running, d.Workers = w.slots, w.running, w.list
		}
	} else {
		d.Slots, d.Running = c.cfg.Workers, int(c.live.running.Load())
	}
	return d
}

// publishLive keeps the entry fresh until ctx ends, then removes it.
func (c *core) publishLive(ctx context.Context) {
	ttl := c.cfg.HeartbeatTimeout
	failing := false
	publish := func() {
		err := c.st.PublishDispatcher(ctx, c.liveEntry(time.Now().UTC()), ttl)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			c.log.Warn("publishing this dispatcher in the live registry failed; retrying every heartbeat", "err", err)
		case err == nil && failing:
			failing = false
			c.log.Info("published in the live registry again")
		}
	}
	publish()
	c.every(ctx, c.cfg.HeartbeatInterval, func(context.Context) { publish() })
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := c.st.RemoveDispatcher(rctx, c.cfg.Owner); err != nil {
		c.log.Debug("removing this dispatcher from the live registry failed; its entry expires", "err", err)
	}
}

// snapshotLive copies the registry for the publisher (the hub loop owns the registry).
func (h *hub) snapshotLive() {
	w := &liveWorkers{list: make([]store.LiveWorker, 0, len(h.workers))}
	for _, r := range h.workers {
		w.slots += r.capacity
		w.running += r.load()
		w.list = append(w.list, store.LiveWorker{ID: r.id, Slots: r.capacity, Running: r.load(),
			Done: r.done, HeardAt: r.lastHeard.UTC()})
	}
	h.c.live.workers.Store(w)
}
