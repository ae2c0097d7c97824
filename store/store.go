package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Config.
const (
	DefaultTaskTTL     = 24 * time.Hour
	DefaultLeaseTTL    = 15 * time.Second
	DefaultMaxAttempts = 3
	DefaultPrefix      = "faas:"
	// DefaultClusterShards is the task shard count on a Redis Cluster (Config.Shards 0).
	DefaultClusterShards = 16
	// MaxShards bounds Config.Shards: the shard is two hex digits of a task id.
	MaxShards = 256
)

// Store is the Redis data model. Safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
	k   keys

	// fns caches functions by id: functions are immutable, so a cached one is never stale.
	fns    sync.Map // id → Function
	nfns   atomic.Int64
	maxFns int64

	// next is the shard the next submission or claim starts at (round robin).
	next atomic.Uint64
	// rings holds, per shard, the namespaces last seen on its ring (Claim declares their
	// queues).
	rings sync.Map // int → []string
	// hints holds, per shard, the ids at the consumer ends of its queues as the last claim
	// left them (Claim declares their hashes, see scriptTake).
	hints sync.Map // int → []string
	// recentFns are the function ids of the last claim, which the next reads on
	// speculation (claim.go, start).
	recentFns atomic.Pointer[[]string]
}

// New returns a store on rdb. It does not own rdb (the caller closes it).
//
// On a Redis Cluster client, a prefix without a hash tag gets one ("faas:" becomes
// "{faas}:") so that every key of the store lives in one slot, which the scripts need.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	cfg = cfg.withDefaults()
	_, cluster := rdb.(*redis.ClusterClient)
	if cluster && !strings.Contains(cfg.Prefix, "{") {
		cfg.Prefix = "{" + strings.TrimSuffix(cfg.Prefix, ":") + "}:"
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 1
		if cluster {
			cfg.Shards = DefaultClusterShards
		}
	}
	cfg.Shards = min(cfg.Shards, MaxShards)
	s := &Store{rdb: rdb, cfg: cfg, k: newKeys(cfg.Prefix, cfg.Shards), maxFns: 4096}
	s.next.Store(uint64(rand.IntN(cfg.Shards)))
	return s
}

func (c Config) withDefaults() Config {
	if c.TaskTTL <= 0 {
		c.TaskTTL = DefaultTaskTTL
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.WaitReplicas > 0 && c.WaitTimeout <= 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	c.WaitTimeout = min(c.WaitTimeout, MaxWaitTimeout)
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	return c
}

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

// DoneChannel is the channel that carries ids of tasks that became terminal.
func (s *Store) DoneChannel() string { return s.k.doneChannel() }

// Ping checks Redis is reachable (ErrUnavailable otherwise).
func (s *Store) Ping(ctx context.Context) error {
	return redisErr("ping", s.rdb.Ping(ctx).Err())
}

// QueueLen is the number of QUEUED tasks waiting, in every namespace and shard: the
// requeue lists, the default queues, and the queues of the namespaces on each shard's ring
// (two pipelined reads; not one atomic count).
func (s *Store) QueueLen(ctx context.Context) (int64, error) {
	type shardCmds struct {
		requeue, def *redis.IntCmd
		nss          *redis.StringSliceCmd
	}
	cs := make([]shardCmds, s.cfg.Shards)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sh := range cs {
			k := s.k.shard(sh)
			cs[sh] = shardCmds{p.LLen(ctx, k.requeue()), p.LLen(ctx, k.queue()), p.SMembers(ctx, k.nsQueued())}
		}
		return nil
	})
	if err != nil {
		return 0, redisErr("queue length", err)
	}
	var total int64
	var more []*redis.IntCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sh, c := range cs {
			total += c.requeue.Val() + c.def.Val()
			for _, ns := range c.nss.Val() {
				if ns != DefaultNamespace {
					more = append(more, p.LLen(ctx, s.k.shard(sh).queueOf(ns)))
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, redisErr("queue length", err)
	}
	for _, c := range more {
		total += c.Val()
	}
	return total, nil
}

// LeaseCount is the number of tasks holding a lease (RUNNING).
func (s *Store) LeaseCount(ctx context.Context) (int64, error) {
	var total int64
	for sh := range s.cfg.Shards {
		n, err := s.rdb.ZCard(ctx, s.k.shard(sh).leases()).Result()
		if err != nil {
			return 0, redisErr("lease count", err)
		}
		total += n
	}
	return total, nil
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			f, _ := strconv.ParseFloat(x, 64)
			return int64(f)
		}
		return n
	default:
		return 0
	}
}

func msTime(v any) time.Time {
	ms := num(v)
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
