package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Task shards (Config.Shards): on a Redis Cluster, tasks, their queues and their leases are
// spread over shards, each under its own hash tag ("{faas:s07}:", keys.go), so that every
// script touches one slot while the shards spread over the masters. A task's shard is
// written into its id (the last two hex digits of the uuid), so reading, completing or
// re-queueing a task goes straight to its shard. With one shard (a single node) nothing of
// this shows: the ids are plain uuids and the keys those of an unsharded faas.
//
// Submissions go round robin over the shards (a batch is cut into one run of consecutive
// inputs per shard, one script each); claims go round robin too, each claim starting at
// the next shard, so no shard is starved. Order: FIFO within a shard (and namespace);
// across shards, tasks are taken a claim's worth from one shard, then the next.

// ErrShards: the deployment's Redis was set up with another shard count.
var ErrShards = errors.New("task shard count differs from the deployment's")

// newTaskID returns a task id (a uuid) whose last two hex digits name shard.
func (s *Store) newTaskID(shard int) string {
	id := uuid.NewString()
	if s.cfg.Shards == 1 {
		return id
	}
	return id[:len(id)-2] + fmt.Sprintf("%02x", shard)
}

// span is a run of a batch's inputs, [lo, hi), that goes to one shard.
type span struct{ shard, lo, hi int }

// spread cuts a batch of n into consecutive runs, one per shard from the next shard on in
// round robin, as even as can be; a batch smaller than the shard count takes n shards.
func (s *Store) spread(n int) []span {
	ns := s.cfg.Shards
	start := int(s.next.Add(1) % uint64(ns))
	k := min(n, ns)
	out := make([]span, 0, k)
	lo := 0
	for i := range k {
		hi := lo + n/k
		if i < n%k {
			hi++
		}
		out = append(out, span{shard: (start + i) % ns, lo: lo, hi: hi})
		lo = hi
	}
	return out
}

// byShard groups refs by the shard of their id, keeping their order within each shard.
func byShard[T any](k keys, items []T, id func(T) string) map[int][]T {
	out := make(map[int][]T, 1)
	for _, it := range items {
		sh := k.shardOf(id(it))
		out[sh] = append(out[sh], it)
	}
	return out
}

func refID(r task.Ref) string { return r.ID }
func strID(s string) string   { return s }

// CheckShards records the shard count at the first start of a deployment and refuses
// another count later (ErrShards, saying which count to use): the shard of a task is in
// its id, so changing the count would strand every unfinished task. There is no
// migration: to change the count, drain the deployment (no queued or running task) and
// delete the <prefix>shards key. It also refuses a sharded start on a Redis that holds
// the queue or leases of the unsharded layout (a cluster used by an older faas).
func (s *Store) CheckShards(ctx context.Context) error {
	want := s.cfg.Shards
	set, err := s.rdb.SetNX(ctx, s.k.shardCount(), want, 0).Result()
	if err != nil {
		return redisErr("shard count", err)
	}
	if !set {
		got, err := s.rdb.Get(ctx, s.k.shardCount()).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return redisErr("shard count", err)
		}
		if n, _ := strconv.Atoi(got); n != want {
			return fmt.Errorf("%w: this deployment's Redis has %s task shards, this process wants %d: "+
				"start it with --shards %s (to change the count, drain every task first, then delete the key %s)",
				ErrShards, got, want, got, s.k.shardCount())
		}
		return nil
	}
	if want == 1 {
		return nil
	}
	old := keys{prefix: s.k.global}
	n, err := s.rdb.Exists(ctx, old.queue()).Result()
	if err == nil && n == 0 {
		n, err = s.rdb.Exists(ctx, old.leases()).Result()
	}
	if err != nil {
		return redisErr("shard count", err)
	}
	if n > 0 {
		s.rdb.Del(ctx, s.k.shardCount())
		return fmt.Errorf("%w: this Redis holds tasks of the unsharded layout (%s): start with --shards 1, or drain them first",
			ErrShards, old.queue())
	}
	return nil
}
