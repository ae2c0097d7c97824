package server

import (
	"context"
	"fmt"
	"sync"

	"faas/store"
)

// coalescer merges concurrent calls into batches, group-commit style: the first caller
// runs its request alone at once (no added latency when idle); callers arriving while a
// batch is in flight queue up, and when it ends the first of them runs everything queued
// as one batch. Under load, one Redis round trip serves many HTTP requests.
//
// There is no background goroutine: the callers themselves do the work, so a Server needs
// no lifecycle for it.
type coalescer[Req, Resp any] struct {
	max int // most requests per batch
	run func(ctx context.Context, reqs []Req) ([]Resp, error)

	mu      sync.Mutex
	busy    bool
	pending []*coalesced[Req, Resp]
}

type coalesced[Req, Resp any] struct {
	req  Req
	resp Resp
	err  error
	// wake is sent true when the call is done, false when its caller must lead the next batch.
	wake chan bool
}

// do runs req, alone or in a batch. The batch runs under the leader's context without its
// cancellation (other callers depend on it): the store's own timeouts bound it.
func (c *coalescer[Req, Resp]) do(ctx context.Context, req Req) (Resp, error) {
	me := &coalesced[Req, Resp]{req: req}
	c.mu.Lock()
	if c.busy {
		me.wake = make(chan bool, 1)
		c.pending = append(c.pending, me)
		c.mu.Unlock()
		if done := <-me.wake; done {
			return me.resp, me.err
		}
		// Our turn to lead: everything queued so far (ourselves included) goes now.
		c.mu.Lock()
		n := min(len(c.pending), c.max)
		batch := c.pending[:n:n]
		c.pending = c.pending[n:]
		c.mu.Unlock()
		c.flush(ctx, batch)
	} else {
		c.busy = true
		c.mu.Unlock()
		c.flush(ctx, []*coalesced[Req, Resp]{me})
	}
	c.handOff()
	return me.resp, me.err
}

func (c *coalescer[Req, Resp]) flush(ctx context.Context, batch []*coalesced[Req, Resp]) {
	reqs := make([]Req, len(batch))
	for i, b := range batch {
		reqs[i] = b.req
	}
	var resps []Resp
	err := func() (err error) {
		defer func() { // a panic must not leave the followers waiting forever
			if v := recover(); v != nil {
				err = fmt.Errorf("panic in batched call: %v", v)
			}
		}()
		resps, err = c.run(context.WithoutCancel(ctx), reqs)
		if err == nil && len(resps) != len(reqs) {
			err = fmt.Errorf("batched call returned %d answers for %d requests", len(resps), len(reqs))
		}
		return err
	}()
	for i, b := range batch {
		if err != nil {
			b.err = err
		} else {
			b.resp = resps[i]
		}
	}
	for _, b := range batch[1:] { // batch[0] is the leader, running this code
		b.wake <- true
	}
}

// handOff passes the lead to the first queued caller, or marks the coalescer idle.
func (c *coalescer[Req, Resp]) handOff() {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.busy = false
		c.mu.Unlock()
		return
	}
	next := c.pending[0]
	c.mu.Unlock()
	next.wake <- false
}

// submitReq is one input to submit; submitResp its task id or why it was not created.
type submitReq struct {
	fn    store.Function
	input []byte
}

type submitResp struct {
	id  string
	err error
}

// submitBatch submits the inputs of concurrent /execute_function calls: one store.Submit
// (one round trip) per function among them, inputs in arrival order.
func (s *Server) submitBatch(ctx context.Context, reqs []submitReq) ([]submitResp, error) {
	out := make([]submitResp, len(reqs))
	if len(reqs) == 1 { // the common case when idle
		fn := reqs[0].fn
		ids, err := s.st.SubmitLimited(ctx, fn, [][]byte{reqs[0].input}, s.quota(fn.Namespace).Tasks)
		if err == nil && len(ids) != 1 {
			err = fmt.Errorf("store.Submit returned %d ids for 1 input", len(ids))
		}
		if err != nil {
			out[0].err = err
		} else {
			out[0].id = ids[0]
		}
		return out, nil
	}
	var order []string
	groups := make(map[string][]int)
	for i, r := range reqs {
		if _, ok := groups[r.fn.ID]; !ok {
			order = append(order, r.fn.ID)
		}
		groups[r.fn.ID] = append(groups[r.fn.ID], i)
	}
	for _, fnID := range order {
		idx := groups[fnID]
		inputs := make([][]byte, len(idx))
		for j, i := range idx {
			inputs[j] = reqs[i].input
		}
		fn := reqs[idx[0]].fn
		ids, err := s.st.SubmitLimited(ctx, fn, inputs, s.quota(fn.Namespace).Tasks)
		if err == nil && len(ids) != len(inputs) {
			err = fmt.Errorf("store.Submit returned %d ids for %d inputs", len(ids), len(inputs))
		}
		for j, i := range idx {
			if err != nil {
				out[i].err = err
			} else {
				out[i].id = ids[j]
			}
		}
	}
	return out, nil
}

// readBatch reads the summaries of concurrent single-task reads in one round trip, small
// outputs included (see inlineOutputs). A missing task has Status "".
func (s *Server) readBatch(ctx context.Context, ids []string) ([]store.Record, error) {
	recs, err := s.st.Summaries(ctx, ids, inlineOutputs)
	if err == nil && len(recs) != len(ids) {
		err = fmt.Errorf("store.Summaries returned %d records for %d ids", len(recs), len(ids))
	}
	return recs, err
}
