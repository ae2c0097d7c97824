package store_test

import (
	"errors"
	"strings"
	"testing"

	"faas/store"
	"faas/task"
)

// TestShardsOnOneNode: four shards on one Redis. A batch spreads over all four (the shard in
// each id), every task is claimed, in FIFO order within its shard, and completed; reads,
// summaries and the quota work across shards; and the count is recorded, so that a store
// with another count is refused.
func TestShardsOnOneNode(t *testing.T) {
	s, srv := startStore(t, store.Config{Shards: 4})
	ctx := ctxT(t)
	if err := s.CheckShards(ctx); err != nil {
		t.Fatalf("CheckShards at first start: %v", err)
	}
	f := mkFunction(t, s, "f")
	ids := submitN(t, s, f, 40)
	perShard := map[string][]string{}
	for _, id := range ids {
		perShard[id[len(id)-2:]] = append(perShard[id[len(id)-2:]], id)
	}
	if len(perShard) != 4 {
		t.Fatalf("40 tasks went to %d shards; want 4", len(perShard))
	}
	if n, err := s.QueueLen(ctx); err != nil || n != 40 {
		t.Fatalf("QueueLen = %d, %v; want 40", n, err)
	}
	var claimed []task.Task
	for len(claimed) < 40 {
		ts := claim(t, s, 7)
		if len(ts) == 0 {
			t.Fatalf("claimed %d of 40, then nothing", len(claimed))
		}
		claimed = append(claimed, ts...)
	}
	pos := map[string]int{}
	for i, tk := range claimed {
		pos[tk.ID] = i
	}
	for sh, list := range perShard {
		for i := 1; i < len(list); i++ {
			if pos[list[i-1]] > pos[list[i]] {
				t.Fatalf("shard %s: task %d claimed before task %d: not FIFO within the shard", sh, i, i-1)
			}
		}
	}
	if n, err := s.Complete(ctx, outcomes(claimed)); err != nil || n != 40 {
		t.Fatalf("Complete = %d, %v; want 40", n, err)
	}
	recs, err := s.Summaries(ctx, ids[:20], 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Status != task.Completed {
			t.Fatalf("summary %+v; want COMPLETED", r)
		}
	}
	if n, err := s.LeaseCount(ctx); err != nil || n != 0 {
		t.Fatalf("LeaseCount = %d, %v; want 0", n, err)
	}

	// The namespace's unfinished tasks are counted over every shard.
	submitN(t, s, f, 6)
	if _, err := s.SubmitLimited(ctx, f, make([][]byte, 5), 10); !errors.Is(err, store.ErrQuota) {
		t.Fatalf("6 unfinished + 5 over a bound of 10: %v; want ErrQuota", err)
	}
	if n, _ := s.QueueLen(ctx); n != 6 {
		t.Fatalf("QueueLen after a refused submission = %d; want 6", n)
	}
	if _, err := s.SubmitLimited(ctx, f, make([][]byte, 4), 10); err != nil {
		t.Fatalf("6 + 4 within a bound of 10: %v", err)
	}

	other := store.New(srv.Client(t), store.Config{Prefix: s.Config().Prefix, Shards: 2})
	if err := other.CheckShards(ctx); !errors.Is(err, store.ErrShards) || !strings.Contains(err.Error(), "--shards 4") {
		t.Fatalf("CheckShards with 2 shards on a deployment of 4: %v; want ErrShards naming --shards 4", err)
	}
	// A sharded start on the queue of an unsharded deployment is refused too.
	old := newStore(t, srv.Client(t), store.Config{})
	submitN(t, old, mkFunction(t, old, "g"), 1)
	sharded := store.New(srv.Client(t), store.Config{Prefix: old.Config().Prefix, Shards: 4})
	if err := sharded.CheckShards(ctx); !errors.Is(err, store.ErrShards) || !strings.Contains(err.Error(), "unsharded") {
		t.Fatalf("CheckShards(4) over an unsharded queue: %v; want ErrShards", err)
	}
}

// TestDequeue: the primitive a cancel path uses takes a QUEUED task off its queue (of its
// namespace, in whichever shard) and fails it, announced once; a RUNNING or finished one is
// left alone.
func TestDequeue(t *testing.T) {
	for _, shards := range []int{1, 4} {
		s, _ := startStore(t, store.Config{Shards: shards})
		ctx := ctxT(t)
		f := inNS(t, s, mkFunction(t, s, "f"), "B")
		ids := submitNS(t, s, f, 3)
		ok, err := store.Dequeue(ctx, s, ids[1], task.KindInternal, "taken off")
		if err != nil || !ok {
			t.Fatalf("shards=%d: Dequeue of a queued task = %v, %v", shards, ok, err)
		}
		if r := mustTask(t, s, ids[1]); r.Status != task.Failed || r.Error.Message != "taken off" {
			t.Fatalf("shards=%d: dequeued task %+v", shards, r)
		}
		if n, _ := s.QueueLen(ctx); n != 2 {
			t.Fatalf("shards=%d: QueueLen = %d; want 2", shards, n)
		}
		ts := claim(t, s, 5)
		if len(ts) != 2 {
			t.Fatalf("shards=%d: claimed %d; want the 2 left", shards, len(ts))
		}
		for _, id := range []string{ids[0], ids[1], "no-such-task"} {
			if ok, err := store.Dequeue(ctx, s, id, task.KindInternal, "x"); err != nil || ok {
				t.Fatalf("shards=%d: Dequeue of %s (running, finished or unknown) = %v, %v", shards, id, ok, err)
			}
		}
	}
}
