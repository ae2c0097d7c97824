package store

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Reading the dashboard history (history.go): a namespace's overview, per-function
// figures and pages of recently finished tasks.

// Interval is one point of a history series.
type Interval struct {
	Start     time.Time
	Completed int64
	Failed    int64
	P50Ms     float64 // 0 when no task finished in the interval
	P99Ms     float64
}

// Overview is a namespace's counts now and its series over the last HistorySpan.
type Overview struct {
	Now       time.Time // Redis's clock
	Queued    int64
	Running   int64 // unfinished minus queued (tasks handed to a dispatcher)
	Completed int64 // since ever (since the history was kept)
	Failed    int64
	Series    []Interval // oldest first, one per HistoryStep, the current one last
}

// FunctionStats are a function's figures over the last HistorySpan.
type FunctionStats struct {
	Completed, Failed int64
	P50Ms, P99Ms      float64
}

// redisNow reads Redis's clock: history intervals are stamped with it (the finish time of
// a task is Redis's), not with this host's.
func (s *Store) redisNow(ctx context.Context) (time.Time, error) {
	t, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, redisErr("time", err)
	}
	return t, nil
}

// Overview returns namespace ns's counts and its last hour, in two round trips.
func (s *Store) Overview(ctx context.Context, ns string) (Overview, error) {
	now, err := s.redisNow(ctx)
	if err != nil {
		return Overview{}, err
	}
	step := int64(HistoryStep / time.Second)
	n := int(HistorySpan / HistoryStep)
	last := now.Unix() - now.Unix()%step
	hists := make([]*redis.MapStringStringCmd, n)
	// Queued and unfinished counts are per task shard (keys.go): summed here.
	queued := make([]*redis.IntCmd, s.cfg.Shards)
	active := make([]*redis.StringCmd, s.cfg.Shards)
	var totals *redis.MapStringStringCmd
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sh := range queued {
			k := s.k.shard(sh)
			queued[sh] = p.LLen(ctx, k.queueOf(ns))
			active[sh] = p.HGet(ctx, k.active(), nsOrDefault(ns))
		}
		totals = p.HGetAll(ctx, s.k.totals(ns))
		for i := range hists {
			hists[i] = p.HGetAll(ctx, s.k.hist(ns, last-int64(n-1-i)*step))
		}
		return nil
	}); err != nil && !isNil(err) {
		return Overview{}, redisErr("overview", err)
	}
	o := Overview{Now: now, Series: make([]Interval, n)}
	var unfinished int64
	for sh := range queued {
		o.Queued += queued[sh].Val()
		a, _ := strconv.ParseInt(active[sh].Val(), 10, 64)
		unfinished += a
	}
	o.Running = max(0, unfinished-o.Queued)
	o.Completed, _ = strconv.ParseInt(totals.Val()[fieldCompleted], 10, 64)
	o.Failed, _ = strconv.ParseInt(totals.Val()[fieldFailed], 10, 64)
	for i, h := range hists {
		var hg histogram
		hg.add(h.Val())
		o.Series[i] = Interval{Start: time.Unix(last-int64(n-1-i)*step, 0),
			Completed: hg.completed, Failed: hg.failed, P50Ms: hg.quantile(0.5), P99Ms: hg.quantile(0.99)}
	}
	return o, nil
}

// FunctionStats returns the figures of functions fids of namespace ns over the last
// HistorySpan, in one round trip (after reading the clock).
func (s *Store) FunctionStats(ctx context.Context, ns string, fids []string) (map[string]FunctionStats, error) {
	out := make(map[string]FunctionStats, len(fids))
	if len(fids) == 0 {
		return out, nil
	}
	now, err := s.redisNow(ctx)
	if err != nil {
		return nil, err
	}
	step := int64(HistoryFnStep / time.Second)
	n := int(HistorySpan / HistoryFnStep)
	last := now.Unix() - now.Unix()%step
	cmds := make([][]*redis.MapStringStringCmd, len(fids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, fid := range fids {
			cmds[j] = make([]*redis.MapStringStringCmd, n)
			for i := range cmds[j] {
				cmds[j][i] = p.HGetAll(ctx, s.k.fnHist(ns, fid, last-int64(i)*step))
			}
		}
		return nil
	}); err != nil {
		return nil, redisErr("function stats", err)
	}
	for j, fid := range fids {
		var hg histogram
		for _, c := range cmds[j] {
			hg.add(c.Val())
		}
		out[fid] = FunctionStats{Completed: hg.completed, Failed: hg.failed,
			P50Ms: hg.quantile(0.5), P99Ms: hg.quantile(0.99)}
	}
	return out, nil
}

// histogram sums interval hashes.
type histogram struct {
	completed, failed int64
	counts            [histBuckets]int64
}

func (h *histogram) add(m map[string]string) {
	for f, v := range m {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case f == fieldCompleted:
			h.completed += n
		case f == fieldFailed:
			h.failed += n
		case strings.HasPrefix(f, histFieldPrefix):
			if b, err := strconv.Atoi(f[len(histFieldPrefix):]); err == nil && b >= 0 && b < histBuckets {
				h.counts[b] += n
			}
		}
	}
}

// quantile returns the run time below which a fraction q of the tasks finished, as the
// middle of its histogram bucket; 0 without tasks.
func (h *histogram) quantile(q float64) float64 {
	var total int64
	for _, c := range h.counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := max(1, int64(math.Ceil(q*float64(total)))) // nearest rank
	var seen int64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return bucketMs(b)
		}
	}
	return bucketMs(histBuckets - 1)
}

// RecentQuery selects recently finished tasks of one namespace.
type RecentQuery struct {
	Status     task.Status // "" any; Failed or Completed
	FunctionID string      // "" any
	Since      time.Time   // zero: the whole index
	Cursor     string      // "" the newest; else the Next of the previous page
	Limit      int         // 1..1000
}

// RecentPage is one page of recent tasks, newest first.
type RecentPage struct {
	Tasks []Record
	Next  string // "" on the last page
}

// ErrBadCursor is returned for a cursor Recent did not hand out.
var ErrBadCursor = fmt.Errorf("store: bad cursor")

// Recent returns a page of namespace ns's recently finished tasks matching q, newest
// first (summaries: outputs left out), from the recent indexes. The cursor is a position:
// the finish time of the last task of the previous page and how many tasks of that same
// finish time were already listed (the tasks of one completed batch share it), so a page
// stays put while new tasks finish. The one filter no index covers directly (completed
// only) reads more index entries than it returns: up to 10 reads, and a shorter page with
// a cursor after that.
func (s *Store) Recent(ctx context.Context, ns string, q RecentQuery) (RecentPage, error) {
	if q.Limit <= 0 || q.Limit > 1000 {
		return RecentPage{}, fmt.Errorf("store: recent: limit %d outside 1..1000", q.Limit)
	}
	key := s.k.recent(ns)
	switch {
	case q.FunctionID != "" && q.Status == task.Failed:
		key = s.k.fnRecentFailed(ns, q.FunctionID)
	case q.FunctionID != "":
		key = s.k.fnRecent(ns, q.FunctionID)
	case q.Status == task.Failed:
		key = s.k.recentFailed(ns)
	}
	maxScore, posMs, skip := "+inf", int64(-1), int64(0)
	if q.Cursor != "" {
		ms, n, ok := strings.Cut(q.Cursor, "_")
		m, err1 := strconv.ParseInt(ms, 10, 64)
		k, err2 := strconv.ParseInt(n, 10, 64)
		if !ok || err1 != nil || err2 != nil || m < 0 || k < 0 {
			return RecentPage{}, fmt.Errorf("%w %q", ErrBadCursor, q.Cursor)
		}
		maxScore, posMs, skip = ms, m, k
	}
	minScore := "-inf"
	if !q.Since.IsZero() {
		minScore = strconv.FormatInt(q.Since.UnixMilli(), 10)
	}
	var page RecentPage
	for round := 0; round < 10 && len(page.Tasks) < q.Limit; round++ {
		want := q.Limit - len(page.Tasks)
		zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{
			Min: minScore, Max: maxScore, Offset: skip, Count: int64(want + 1)}).Result()
		if err != nil {
			return RecentPage{}, redisErr("recent", err)
		}
		more := len(zs) > want // the index has more beyond this page
		if more {
			zs = zs[:want]
		}
		if len(zs) == 0 {
			page.Next = ""
			break
		}
		ids := make([]string, len(zs))
		for i, z := range zs {
			ids[i], _ = z.Member.(string)
		}
		// The next position: after the last entry, counting the entries of its score.
		lastMs := int64(zs[len(zs)-1].Score)
		same := int64(0)
		for _, z := range zs {
			if int64(z.Score) == lastMs {
				same++
			}
		}
		if lastMs == posMs {
			skip += same
		} else {
			skip = same
		}
		posMs, maxScore = lastMs, strconv.FormatInt(lastMs, 10)
		page.Next = maxScore + "_" + strconv.FormatInt(skip, 10)
		recs, err := s.Summaries(ctx, ids, 0)
		if err != nil {
			return RecentPage{}, err
		}
		for _, r := range recs {
			if r.Status != "" && (q.Status == "" || r.Status == q.Status) {
				page.Tasks = append(page.Tasks, r)
			}
		}
		if !more {
			page.Next = ""
			break
		}
	}
	return page, nil
}
