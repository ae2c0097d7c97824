package store

import (
	"context"
	"fmt"

	"faas/task"

	"github.com/redis/go-redis/v9"
)

// unfinishedScan is the most queue or lease entries Unfinished reads to fill a page: the
// filter by namespace (leases are global) and by function happens after the read.
const unfinishedScan = 10_000

// Unfinished returns up to limit tasks of namespace ns that are QUEUED (the next to run
// first, read from the namespace's queue) or RUNNING (read from the leases), optionally of
// one function, as summaries. It reads at most unfinishedScan entries, so a filter that
// matches few of many unfinished tasks may answer fewer than there are. There is no
// paging: the queue and the leases change by the millisecond.
func (s *Store) Unfinished(ctx context.Context, ns string, status task.Status, functionID string, limit int) ([]Record, error) {
	if limit <= 0 || limit > 1000 {
		return nil, fmt.Errorf("store: unfinished: limit %d outside 1..1000", limit)
	}
	scan := int64(limit)
	if functionID != "" || status == task.Running {
		scan = unfinishedScan
	}
	if status != task.Queued && status != task.Running {
		return nil, fmt.Errorf("store: unfinished: status %q is not QUEUED or RUNNING", status)
	}
	// Each task shard has its own queues and leases: read a share of the scan from each,
	// in one round trip. Across shards there is no single order (see Claim).
	per := max(1, scan/int64(s.cfg.Shards))
	cmds := make([]*redis.StringSliceCmd, s.cfg.Shards)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sh := range cmds {
			k := s.k.shard(sh)
			if status == task.Queued {
				// Submit pushes on the left, Claim pops on the right: the right end runs next.
				cmds[sh] = p.LRange(ctx, k.queueOf(ns), -per, -1)
			} else {
				cmds[sh] = p.ZRange(ctx, k.leases(), 0, per-1)
			}
		}
		return nil
	})
	var ids []string
	for _, c := range cmds {
		part := c.Val()
		if status == task.Queued {
			for i, j := 0, len(part)-1; i < j; i, j = i+1, j-1 {
				part[i], part[j] = part[j], part[i]
			}
		}
		ids = append(ids, part...)
	}
	if err != nil {
		return nil, redisErr("unfinished", err)
	}
	recs, err := s.Summaries(ctx, ids, 0)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, min(limit, len(recs)))
	for _, r := range recs {
		if r.Status == status && r.Namespace == nsOrDefault(ns) && (functionID == "" || r.FunctionID == functionID) {
			out = append(out, r)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}
