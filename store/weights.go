package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// MaxWeight bounds a namespace's claim weight.
const MaxWeight = 1000

// SetWeights sets the namespaces' claim weights (fair share, scriptTake): a namespace of
// weight w gets w tasks for another's one when both have a backlog. Namespaces not in
// weights, and weights of 1 or less, weigh 1. It replaces the previous weights, shard by
// shard (a claim on a shard sees its old weights or its new ones). The weights are the
// deployment's: with several servers, the last to write wins.
func (s *Store) SetWeights(ctx context.Context, weights map[string]int) error {
	args := make([]any, 0, 2*len(weights))
	for ns, w := range weights {
		if err := CheckNamespace(nsOrDefault(ns)); err != nil {
			return fmt.Errorf("store: weights: %w", err)
		}
		if w > 1 {
			args = append(args, nsOrDefault(ns), min(w, MaxWeight))
		}
	}
	for sh := range s.cfg.Shards {
		k := s.k.shard(sh)
		_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, k.nsWeights())
			if len(args) > 0 {
				p.HSet(ctx, k.nsWeights(), args...)
			}
			return nil
		})
		if err != nil {
			return redisErr("set weights", err)
		}
	}
	return nil
}
