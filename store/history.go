package store

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// History: what the dashboard shows of the past hour, and indexes of recently finished
// tasks. CompleteFrom writes it after its script, as separate pipelined commands and never
// inside a Lua script that touches task or queue keys: each history key carries its own
// hash tag, so on a sharded Cluster it may live on any node without making a script
// cross-slot. History is best effort: a failed write is logged, never retried (the outcome
// itself is already recorded). The complete script answers which outcomes it applied, with
// their namespace and function, so each task is counted once and nothing is read back.
//
//	<prefix>hist:{<ns>}:<t>         hash  one 10 s interval starting at unix second t:
//	                                      c (completed), f (failed), d<i> (run-time histogram)
//	<prefix>fhist:{<ns>/<fid>}:<t>  hash  the same per function, per 60 s interval
//	<prefix>totals:{<ns>}           hash  c, f: counts since ever (no TTL; two fields)
//	<prefix>recent:{<ns>}           zset  finished task ids by finish time (unix ms)
//	<prefix>recent:{<ns>}:failed    zset  the failed ones
//	<prefix>frecent:{<ns>/<fid>}    zset  one function's
//	<prefix>frecent:{<ns>/<fid>}:failed  zset  one function's failed ones
//
// Interval hashes expire HistoryTTL after their interval ends. The recent indexes are
// trimmed on every write to their count bound (RecentPerNamespace, RecentFailed,
// RecentPerFunction, RecentFailedPerFunction) and to TaskTTL by age, and expire TaskTTL
// after their last write. A namespace's indexes hold at most 100,000 + 20,000 + 25,000
// per function entries, about 130 bytes each (docs/BENCHMARKS.md).

// History intervals and bounds.
const (
	HistoryStep     = 10 * time.Second // interval of the namespace series
	HistoryFnStep   = time.Minute      // interval of the per-function series
	HistorySpan     = time.Hour        // what the series cover
	HistoryTTL      = HistorySpan + 5*time.Minute
	histBuckets     = 80 // run-time histogram buckets: see durBucket
	fieldCompleted  = "c"
	fieldFailed     = "f"
	histFieldPrefix = "d"

	// RecentPerNamespace bounds the recent-task index of a namespace (entries).
	RecentPerNamespace = 100_000
	// RecentFailed bounds the index of a namespace's failed tasks.
	RecentFailed = 20_000
	// RecentPerFunction bounds the recent-task index of one function.
	RecentPerFunction = 20_000
	// RecentFailedPerFunction bounds the index of one function's failed tasks.
	RecentFailedPerFunction = 5_000
)

func (k keys) hist(ns string, t int64) string {
	return k.prefix + "hist:{" + nsOrDefault(ns) + "}:" + strconv.FormatInt(t, 10)
}
func (k keys) fnHist(ns, fid string, t int64) string {
	return k.prefix + "fhist:{" + nsOrDefault(ns) + "/" + fid + "}:" + strconv.FormatInt(t, 10)
}
func (k keys) totals(ns string) string       { return k.prefix + "totals:{" + nsOrDefault(ns) + "}" }
func (k keys) recent(ns string) string       { return k.prefix + "recent:{" + nsOrDefault(ns) + "}" }
func (k keys) recentFailed(ns string) string { return k.recent(ns) + ":failed" }
func (k keys) fnRecent(ns, fid string) string {
	return k.prefix + "frecent:{" + nsOrDefault(ns) + "/" + fid + "}"
}
func (k keys) fnRecentFailed(ns, fid string) string { return k.fnRecent(ns, fid) + ":failed" }

// durBucket maps a run time to its histogram bucket: 0 for under 1 ms, then four buckets
// per doubling (each about 19% wide), so p50/p99 are read within ±10% from fixed fields.
func durBucket(ms int64) int {
	if ms < 1 {
		return 0
	}
	b := int(4*math.Log2(float64(ms))) + 1
	return min(b, histBuckets-1)
}

// bucketMs is the representative run time of bucket b (its geometric middle).
func bucketMs(b int) float64 {
	if b <= 0 {
		return 0.5
	}
	return math.Exp2((float64(b-1) + 0.5) / 4)
}

// recordAfterComplete writes what follows the outcomes the complete script applied, in one
// pipeline: the dashboard's history (counters and recent-task indexes) and the function
// logs (logs.go). info is the script's answer: now (ms), then id, namespace, function id
// per applied outcome. A failed write is logged: the outcomes themselves are recorded.
func (s *Store) recordAfterComplete(ctx context.Context, outcomes []task.Outcome, info []string) {
	now, err := strconv.ParseInt(info[0], 10, 64)
	if err != nil {
		slog.Warn("store: the complete script's clock is not a number; no history or logs written", "now", info[0])
		return
	}
	// The first outcome of an id is the one the script applied (the next found it terminal).
	byID := make(map[string]*task.Outcome, len(outcomes))
	for i := range outcomes {
		if _, ok := byID[outcomes[i].ID]; !ok {
			byID[outcomes[i].ID] = &outcomes[i]
		}
	}
	var b historyBatch
	var logs logBatch
	for i := 1; i+2 < len(info); i += 3 {
		o := byID[info[i]]
		if o == nil {
			continue
		}
		b.add(s.k, o.ID, info[i+1], info[i+2], o.Status(), now, o.Duration.Milliseconds())
		logs.add(s.k, info[i+2], o)
	}
	if len(b.incr) == 0 && len(logs.keys) == 0 {
		return
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		b.write(ctx, p, s.cfg.TaskTTL)
		logs.write(ctx, p)
		return nil
	})
	if err != nil {
		slog.Warn("store: writing the dashboard history and function logs failed; those tasks are missing from them",
			"tasks", (len(info)-1)/3, "err", redisErr("history and logs", err))
	}
}

// lostAnswer reads the answer of the scripts that charge an attempt to tasks whose worker
// was lost (luaRequeue): {requeued, failed, now (ms), then per task failed worker_lost: id,
// namespace, function id, message}, and writes those failures to the dashboard history and
// the function logs, as recordAfterComplete does for outcomes (their run time unknown: 0).
func (s *Store) lostAnswer(ctx context.Context, res []any) (requeued, failed int) {
	num := func(v any) int {
		n, _ := v.(int64)
		return int(n)
	}
	if len(res) < 3 {
		return 0, 0
	}
	requeued, failed = num(res[0]), num(res[1])
	info := []string{fmt.Sprint(res[2])}
	var outcomes []task.Outcome
	for i := 3; i+3 < len(res); i += 4 {
		id, ns, fid, msg := fmt.Sprint(res[i]), fmt.Sprint(res[i+1]), fmt.Sprint(res[i+2]), fmt.Sprint(res[i+3])
		info = append(info, id, ns, fid)
		outcomes = append(outcomes, task.Outcome{Ref: task.Ref{ID: id},
			Failure: &task.Failure{Kind: task.KindWorkerLost, Message: msg}})
	}
	if len(outcomes) > 0 {
		s.recordAfterComplete(ctx, outcomes, info)
	}
	return requeued, failed
}

// historyBatch gathers the history writes of one batch of outcomes by key, so that a
// batch costs one command per key touched rather than several per task.
type historyBatch struct {
	incr   map[string]map[string]int64 // counter hash → field → increment
	expire map[string]time.Time        // interval hash → expiry
	zadd   map[string][]redis.Z        // recent index → entries
	bound  map[string]int64            // recent index → its count bound
	newest int64                       // newest finish time (ms) in the batch
}

func (b *historyBatch) add(k keys, id, ns, fid string, st task.Status, finMs, durMs int64) {
	if b.incr == nil {
		b.incr = make(map[string]map[string]int64)
		b.expire = make(map[string]time.Time)
		b.zadd = make(map[string][]redis.Z)
		b.bound = make(map[string]int64)
	}
	b.newest = max(b.newest, finMs)
	field := fieldCompleted
	if st == task.Failed {
		field = fieldFailed
	}
	dfield := histFieldPrefix + strconv.Itoa(durBucket(durMs))
	sec := finMs / 1000
	step, fstep := int64(HistoryStep/time.Second), int64(HistoryFnStep/time.Second)
	for _, h := range []struct {
		key string
		end int64
	}{
		{k.hist(ns, sec-sec%step), sec - sec%step + step},
		{k.fnHist(ns, fid, sec-sec%fstep), sec - sec%fstep + fstep},
	} {
		b.count(h.key, field)
		b.count(h.key, dfield)
		b.expire[h.key] = time.Unix(h.end, 0).Add(HistoryTTL)
	}
	b.count(k.totals(ns), field)
	z := redis.Z{Score: float64(finMs), Member: id}
	b.index(k.recent(ns), RecentPerNamespace, z)
	b.index(k.fnRecent(ns, fid), RecentPerFunction, z)
	if st == task.Failed {
		b.index(k.recentFailed(ns), RecentFailed, z)
		b.index(k.fnRecentFailed(ns, fid), RecentFailedPerFunction, z)
	}
}

func (b *historyBatch) count(key, field string) {
	m := b.incr[key]
	if m == nil {
		m = make(map[string]int64, 4)
		b.incr[key] = m
	}
	m[field]++
}

func (b *historyBatch) index(key string, bound int64, z redis.Z) {
	b.zadd[key] = append(b.zadd[key], z)
	b.bound[key] = bound
}

// write queues the batch's commands on p: per index one ZADD, a trim to its bound and to
// the task TTL by age, and its expiry.
func (b *historyBatch) write(ctx context.Context, p redis.Pipeliner, ttl time.Duration) {
	for key, fields := range b.incr {
		for f, n := range fields {
			p.HIncrBy(ctx, key, f, n)
		}
		if at, ok := b.expire[key]; ok {
			p.ExpireAt(ctx, key, at)
		}
	}
	oldest := "(" + strconv.FormatInt(b.newest-ttl.Milliseconds(), 10)
	for key, zs := range b.zadd {
		p.ZAdd(ctx, key, zs...)
		p.ZRemRangeByRank(ctx, key, 0, -b.bound[key]-1)
		p.ZRemRangeByScore(ctx, key, "-inf", oldest)
		p.PExpire(ctx, key, ttl)
	}
}
