package dispatch

import (
	"context"
	"log/slog"

	"faas/protocol"
	"faas/task"
)

// runPush serves push workers: each registers a capacity on a DEALER socket; the claimer
// claims as many tasks as there are free slots in total (tasks wait in Redis while every
// worker is full), and each claimed task goes to the least-loaded worker with a free slot.
// Results arrive asynchronously and free their slot. See docs/PROTOCOL.md.
func runPush(ctx context.Context, c *core, cfg Config, log *slog.Logger) error {
	h, err := newHub(c, cfg, log, protocol.ModePush)
	if err != nil {
		return err
	}
	h.hooks = &pushMode{h: h, batch: make(map[*remoteWorker][]task.Task)}
	return h.run(ctx)
}

type pushMode struct {
	h     *hub
	batch map[*remoteWorker][]task.Task // reused: tasks per worker of one delivery
}

func (p *pushMode) request(peer, [][]byte, protocol.RequestTask) {}

// pick returns the least-loaded worker with a free slot (load relative to capacity; ties
// go to the one with fewer tasks), or nil when every worker is full.
func (p *pushMode) pick(extra map[*remoteWorker][]task.Task) *remoteWorker {
	var best *remoteWorker
	var bestLoad, bestCap int
	for _, w := range p.h.workers {
		if w.leaving {
			continue
		}
		load := w.load() + len(extra[w])
		if load >= w.capacity {
			continue
		}
		// load/capacity < bestLoad/bestCap, without division.
		if best == nil || load*bestCap < bestLoad*w.capacity || load*bestCap == bestLoad*w.capacity && load < bestLoad {
			best, bestLoad, bestCap = w, load, w.capacity
		}
	}
	return best
}

// deliver sends each task to the least-loaded worker with a free slot, one NEW_TASK per
// worker; tasks no worker has room for wait in the ready list.
func (p *pushMode) deliver(ts []task.Task) {
	for i, t := range ts {
		w := p.pick(p.batch)
		if w == nil {
			p.h.keepReady(ts[i:])
			break
		}
		p.batch[w] = append(p.batch[w], t)
	}
	for w, b := range p.batch {
		for len(b) > 0 { // one NEW_TASK per worker, unless it would exceed the message bound
			b = p.h.sendTasks(w, nil, b)
		}
		delete(p.batch, w)
	}
}

// rebalance hands ready tasks to free slots, then wants claimed exactly as many tasks as
// there are free slots left.
func (p *pushMode) rebalance() {
	h := p.h
	if len(h.ready) > 0 {
		p.deliver(h.takeReady(len(h.ready)))
	}
	free := 0
	for _, w := range h.workers {
		if !w.leaving {
			free += max(0, w.capacity-w.load())
		}
	}
	if want := free - h.demand.get() - int(h.transit.Load()) - len(h.ready); want != 0 {
		h.order(want)
	}
}

func (p *pushMode) forget(w *remoteWorker) {}

func (p *pushMode) stop() {}
