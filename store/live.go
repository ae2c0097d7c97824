package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// The live registry: each dispatcher writes who it is and its workers into one key of its
// own, with a TTL that its heartbeat refreshes, so that a killed dispatcher vanishes on its
// own. An index (a sorted set of dispatcher ids) lets a reader find them without SCAN, which
// a Redis Cluster would need on every master. Both keys carry the hash tag "{live}" and are
// written from Go with plain commands, never from a script that touches task keys, so the
// sharded layout keeps every script single-slot.
//
//	<prefix>{live}:dispatcher:<id>  string  JSON of a Dispatcher; PX the dispatcher's TTL
//	<prefix>{live}:dispatchers      zset    dispatcher ids scored by when last written (ms);
//	                                        PX liveIndexTTLs × the TTL (a deployment that
//	                                        stopped leaves nothing behind)

// MaxLiveWorkers bounds the workers one dispatcher's entry lists (the busiest first): a
// dispatcher with 10,000 workers writes these and counts the rest in WorkersOmitted, so its
// key stays near 20 KB however many workers it has. Its Slots and Running count them all.
const MaxLiveWorkers = 100

// MaxLiveDispatchers bounds how many dispatchers Dispatchers reads.
const MaxLiveDispatchers = 1000

const (
	liveIndexTTLs = 10
	maxLiveIDLen  = 200
)

// Dispatcher is one dispatcher of the live registry, in the shape of GET /workers.
type Dispatcher struct {
	ID             string       `json:"id"`
	Mode           string       `json:"mode"`              // local, pull or push
	Address        string       `json:"address,omitempty"` // where workers connect (remote modes)
	Version        string       `json:"version"`
	StartedAt      time.Time    `json:"started_at"`
	HeardAt        time.Time    `json:"heard_at"`
	Slots          int          `json:"slots"`   // tasks it can run at once (local) or its workers' total
	Running        int          `json:"running"` // tasks running now
	Done           int64        `json:"done"`    // outcomes it handed to Redis since it started (every mode)
	Workers        []LiveWorker `json:"workers"`
	WorkersOmitted int          `json:"workers_omitted,omitempty"` // beyond MaxLiveWorkers
}

// LiveWorker is one remote worker of a dispatcher.
type LiveWorker struct {
	ID      string    `json:"id"`
	Slots   int       `json:"slots"`
	Running int       `json:"running"`
	Done    int64     `json:"done"` // outcomes received from it since it registered
	HeardAt time.Time `json:"heard_at"`
}

// PublishDispatcher writes d into the live registry for ttl (at least 1s). Workers beyond
// MaxLiveWorkers are left out (the busiest are kept) and counted in WorkersOmitted.
func (s *Store) PublishDispatcher(ctx context.Context, d Dispatcher, ttl time.Duration) error {
	if d.ID == "" || len(d.ID) > maxLiveIDLen {
		return fmt.Errorf("store: dispatcher id %q: want 1 to %d bytes", d.ID, maxLiveIDLen)
	}
	ttl = max(ttl, time.Second)
	if len(d.Workers) > MaxLiveWorkers {
		ws := slices.Clone(d.Workers)
		slices.SortFunc(ws, func(a, b LiveWorker) int {
			return cmp.Or(cmp.Compare(b.Running, a.Running), cmp.Compare(a.ID, b.ID))
		})
		d.WorkersOmitted += len(ws) - MaxLiveWorkers
		d.Workers = ws[:MaxLiveWorkers]
	}
	if d.Workers == nil {
		d.Workers = []LiveWorker{}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("store: dispatcher %q: %w", d.ID, err)
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.k.liveDispatcher(d.ID), b, ttl)
		p.ZAdd(ctx, s.k.liveIndex(), redis.Z{Score: float64(d.HeardAt.UnixMilli()), Member: d.ID})
		p.PExpire(ctx, s.k.liveIndex(), liveIndexTTLs*ttl)
		return nil
	})
	return redisErr("publish dispatcher", err)
}

// RemoveDispatcher takes a dispatcher out of the live registry (at a clean stop).
func (s *Store) RemoveDispatcher(ctx context.Context, id string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.k.liveDispatcher(id))
		p.ZRem(ctx, s.k.liveIndex(), id)
		return nil
	})
	return redisErr("remove dispatcher", err)
}

// Dispatchers reads the live registry: the dispatchers whose entry has not expired, by id.
// Ids of expired entries are dropped from the index on the way.
func (s *Store) Dispatchers(ctx context.Context) ([]Dispatcher, error) {
	ids, err := s.rdb.ZRange(ctx, s.k.liveIndex(), 0, MaxLiveDispatchers-1).Result()
	if err != nil {
		return nil, redisErr("dispatchers", err)
	}
	if len(ids) == 0 {
		return []Dispatcher{}, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.k.liveDispatcher(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, redisErr("dispatchers", err)
	}
	out := make([]Dispatcher, 0, len(ids))
	var gone []any
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			gone = append(gone, ids[i])
			continue
		}
		var d Dispatcher
		if err := json.Unmarshal([]byte(str), &d); err != nil {
			// Written by a newer or broken faas: skip it rather than fail the whole view.
			continue
		}
		out = append(out, d)
	}
	if len(gone) > 0 {
		// Best effort: a later reader drops them if this fails.
		_ = s.rdb.ZRem(ctx, s.k.liveIndex(), gone...).Err()
	}
	slices.SortFunc(out, func(a, b Dispatcher) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// AnyDispatcher reports whether a dispatcher is alive, reading at most the 10 most
// recently heard entries' existence (not their JSON): /healthz asks it on every probe.
func (s *Store) AnyDispatcher(ctx context.Context) (bool, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.k.liveIndex(), 0, 9).Result()
	if err != nil {
		return false, redisErr("any dispatcher", err)
	}
	if len(ids) == 0 {
		return false, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.k.liveDispatcher(id)
	}
	n, err := s.rdb.Exists(ctx, keys...).Result()
	if err != nil {
		return false, redisErr("any dispatcher", err)
	}
	return n > 0, nil
}
