package dispatch

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"faas/protocol"
	"faas/task"
)

// runPull serves pull workers: each asks for up to N tasks on a REQ socket when it has N
// free slots; the ROUTER holds an idle worker's request until tasks arrive (no polling),
// and the claimer claims exactly what the held requests want. Results, heartbeats and
// module requests come on each worker's second (DEALER) socket, so they never wait behind
// a held request. See docs/PROTOCOL.md.
func runPull(ctx context.Context, c *core, cfg Config, log *slog.Logger) error {
	h, err := newHub(c, cfg, log, protocol.ModePull)
	if err != nil {
		return err
	}
	h.hooks = &pullMode{h: h}
	return h.run(ctx)
}

// heldRequest is a pull worker's REQUEST_TASK that waits for tasks.
type heldRequest struct {
	w    *remoteWorker
	env  [][]byte // REQ envelope to answer on
	want int
}

type pullMode struct {
	h       *hub
	waiting []*heldRequest // FIFO: the first asked is the first served
}

// request takes a REQUEST_TASK. Its REQ connection belongs to the worker whose DEALER has
// the matching routing id and the same key (protocol.RouteRequest), whatever worker id the
// message names.
func (p *pullMode) request(from peer, env [][]byte, m protocol.RequestTask) {
	h := p.h
	var w *remoteWorker
	if ctl := controlRoute(from.route); ctl != nil {
		w = h.known(peer{key: from.key, route: ctl}, [][]byte{ctl, nil}, time.Now())
	}
	switch {
	case w == nil:
		h.reply(env, protocol.Error{Code: protocol.CodeUnknownWorker, Text: "register again"})
		return
	case h.stopping || w.leaving:
		h.reply(env, protocol.NoTask{})
		return
	}
	if w.held != nil {
		// The worker gave up on its previous request (REQ_RELAXED after it thought we had
		// gone away): its answer would be dropped, so it must not get one.
		p.drop(w.held)
	}
	want := min(max(m.Want, 1), w.capacity)
	if ts := h.takeReady(want); len(ts) > 0 {
		h.keepReady(h.sendTasks(w, env, ts))
		return
	}
	r := &heldRequest{w: w, env: env, want: want}
	w.held = r
	p.waiting = append(p.waiting, r)
	h.order(want)
}

// deliver answers held requests in order, each with up to what it asked for. A request
// answered with fewer tasks than it wanted is done (the worker asks again for the rest), so
// the rest of its want is cancelled.
func (p *pullMode) deliver(ts []task.Task) {
	h := p.h
	for len(ts) > 0 && len(p.waiting) > 0 {
		r := p.waiting[0]
		p.waiting[0] = nil
		p.waiting = p.waiting[1:]
		r.w.held = nil
		n := min(r.want, len(ts))
		rest := h.sendTasks(r.w, r.env, ts[:n:n]) // a reply is one message: what did not fit waits
		n -= len(rest)
		h.order(n - r.want)
		h.keepReady(rest)
		ts = ts[n+len(rest):]
	}
	h.keepReady(ts)
}

func (p *pullMode) rebalance() {
	// Serve held requests from tasks claimed for requests that went away.
	if len(p.waiting) > 0 && len(p.h.ready) > 0 {
		p.deliver(p.h.takeReady(len(p.h.ready)))
	}
}

func (p *pullMode) forget(w *remoteWorker) {
	if w.held != nil {
		p.h.reply(w.held.env, protocol.NoTask{})
		p.drop(w.held)
	}
}

func (p *pullMode) stop() {
	for _, r := range p.waiting {
		p.h.reply(r.env, protocol.NoTask{})
		r.w.held = nil
	}
	p.waiting = nil
}

func (p *pullMode) drop(r *heldRequest) {
	r.w.held = nil
	if i := slices.Index(p.waiting, r); i >= 0 {
		p.waiting = slices.Delete(p.waiting, i, i+1)
	}
	p.h.order(-r.want)
}
