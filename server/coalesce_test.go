package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCoalescer(t *testing.T) {
	var calls, maxBatch atomic.Int64
	c := coalescer[int, int]{max: 16, run: func(ctx context.Context, reqs []int) ([]int, error) {
		calls.Add(1)
		if int64(len(reqs)) > maxBatch.Load() {
			maxBatch.Store(int64(len(reqs)))
		}
		if len(reqs) > 16 {
			t.Errorf("batch of %d, above max 16", len(reqs))
		}
		time.Sleep(time.Millisecond) // a round trip: lets callers pile up
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = 2 * r
		}
		return out, nil
	}}
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Go(func() {
			got, err := c.do(context.Background(), i)
			if err != nil || got != 2*i {
				t.Errorf("do(%d) = %d, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	if calls.Load() >= 500 || maxBatch.Load() < 2 {
		t.Fatalf("%d calls for 500 requests, largest batch %d: nothing was coalesced", calls.Load(), maxBatch.Load())
	}
	if c.busy || len(c.pending) != 0 {
		t.Fatalf("left busy=%v with %d pending", c.busy, len(c.pending))
	}
	// Idle again: a lone call runs at once, alone.
	before := calls.Load()
	if got, err := c.do(context.Background(), 21); got != 42 || err != nil || calls.Load() != before+1 {
		t.Fatalf("lone call: %d %v", got, err)
	}
}

func TestCoalescerErrorsAndPanics(t *testing.T) {
	boom := errors.New("boom")
	var n atomic.Int64
	c := coalescer[int, int]{max: 8, run: func(ctx context.Context, reqs []int) ([]int, error) {
		time.Sleep(time.Millisecond)
		switch n.Add(1) % 3 {
		case 0:
			panic("bad")
		case 1:
			return nil, boom
		}
		return make([]int, len(reqs)-1), nil // wrong length
	}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a cancelled caller context does not cancel the batch
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if _, err := c.do(ctx, i); err == nil {
				t.Errorf("do(%d): want an error", i)
			}
		})
	}
	wg.Wait()
}
