package store

import (
	"context"
	"fmt"
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
}

// New returns a store on rdb. It does not own rdb (the caller closes it).
//
// On a Redis Cluster client, a prefix without a hash tag gets one ("faas:" becomes
// "{faas}:") so that every key of the store lives in one slot, which the scripts need.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	cfg = cfg.withDefaults()
	if _, ok := rdb.(*redis.ClusterClient); ok && !strings.Contains(cfg.Prefix, "{") {
		cfg.Prefix = "{" + strings.TrimSuffix(cfg.Prefix, ":") + "}:"
	}
	return &Store{rdb: rdb, cfg: cfg, k: keys{prefix: cfg.Prefix}, maxFns: 4096}
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

// QueueLen is the number of QUEUED tasks waiting, in every namespace.
func (s *Store) QueueLen(ctx context.Context) (int64, error) {
	// KEYS[1] routes the script to the node of the store's slot on a Redis Cluster.
	n, err := s.eval(ctx, scriptQueueLen, call{keys: []string{s.k.queue()}, argv: []any{s.k.taskPrefix()}}).Int64()
	return n, redisErr("queue length", err)
}

// scriptQueueLen sums the lengths of the default queue and of every namespace's on the ring.
//
//	KEYS[1]  queue (of the default namespace)
//	ARGV[1]  task key prefix (see luaQueues)
var scriptQueueLen = redis.NewScript(luaQueues + `
local total = redis.call('LLEN', queue_of('default'))
for _, ns in ipairs(redis.call('SMEMBERS', nsq_key)) do
  if ns ~= 'default' then total = total + redis.call('LLEN', queue_of(ns)) end
end
return total
`)

// LeaseCount is the number of tasks holding a lease (RUNNING).
func (s *Store) LeaseCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.k.leases()).Result()
	return n, redisErr("lease count", err)
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
