package store

import (
	"context"
	"time"
)

// Taking back leased tasks whose ids only Redis knows (the leases that expired, those of an
// owner): each is two steps, as every key a script touches is declared. A read (or a
// script on the leases alone) lists the ids; a script with their task hashes declared
// re-checks each lease and record, so whatever changed in between (a renewal, a completion,
// another recoverer) is respected.

// leaseChunk bounds the ids one step of these examines, so that no script holds Redis long.
const leaseChunk = 1000

// expiredArgs are the KEYS and ARGV of scriptExpired.
type expiredArgs struct {
	batch int
	gap   time.Duration
	hold  time.Duration
}

func (a expiredArgs) call(k keys) call {
	return call{keys: []string{k.leases(), k.recoverer()},
		argv: []any{a.batch, a.gap.Milliseconds(), a.hold.Milliseconds()}}
}

// scriptExpired lists up to batch ids whose lease deadline has passed, the first expired
// first, unless the outage guard holds recovery back.
//
//	KEYS[1]  leases
//	KEYS[2]  recoverer clock (hash: last = the previous run, hold = no recovery before)
//	ARGV[1]  batch limit
//	ARGV[2]  gap (ms): a previous run older than this means Redis or every dispatcher was away
//	ARGV[3]  hold (ms): how long recovery then waits
//
// Outage guard: Redis's clock runs on while Redis is paused, restarting or cut off from every
// dispatcher, so after an outage longer than LeaseTTL every lease has expired, those of live
// dispatchers included; and a recovery sent during the outage may be executed when Redis
// comes back. So when the previous run is older than the gap (recoverers run every
// LeaseTTL/4; the very first run has no previous one), recovery waits `hold`, long enough
// for the live dispatchers to renew their leases (a renewal succeeds while the task is
// RUNNING at that attempt, even past its deadline). Only Redis's own clock is used.
var scriptExpired = newScript(luaPrelude + `
local leases, recoverer = KEYS[1], KEYS[2]
local batch, gap, hold_for = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('HMGET', recoverer, 'last', 'hold')
local last, hold = tonumber(clock[1]), tonumber(clock[2]) or 0
if last ~= nil and now_n - last > gap then
  hold = now_n + hold_for
  redis.call('HSET', recoverer, 'hold', n(hold))
end
redis.call('HSET', recoverer, 'last', now)
if now_n < hold then return {} end
return redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, batch)
`)

// recoverArgs are the KEYS and ARGV of scriptRecover.
type recoverArgs struct {
	lostArgs
	ids []string
}

func (a recoverArgs) call(k keys) call {
	extra := make([]any, len(a.ids))
	for i, id := range a.ids {
		extra[i] = id
	}
	return a.lostArgs.call(k, a.ids, extra...)
}

// scriptRecover requeues (as scriptRequeue) the tasks of leases that are still expired.
//
//	KEYS, ARGV[1..5]  as luaRequeue (KEYS[6..]: one task hash per id)
//	ARGV[6..] ids, the first expired first
//
// A RUNNING task is requeued, charged an attempt; a QUEUED one (its claimer died between
// scriptTake and scriptStart) goes back uncharged; the lease of any other (finished,
// expired) is dropped. Atomic, so several dispatchers may run it at once: each expired lease
// is handled by exactly one. Returns the lost answer (lostAnswer).
var scriptRecover = newScript(luaPrelude + luaShard + luaFinish + luaRequeue + `
for j = #KEYS, 6, -1 do -- backwards: the lease that expired first is claimed again first
  local key, id = KEYS[j], ARGV[j]
  local deadline = tonumber(redis.call('ZSCORE', leases_key, id))
  if deadline and deadline <= now_n then
    local t = redis.call('HMGET', key, 'status', 'attempts')
    if t[1] == 'RUNNING' then
      requeue(key, id, tonumber(t[2]) or 0, 'lease expired')
    elseif t[1] == 'QUEUED' then
      redis.call('ZREM', leases_key, id)
      back_to_queue(id)
      queued[#queued + 1] = id
    else
      redis.call('ZREM', leases_key, id)
    end
  end
end
return announce()
`)

// RecoverExpired requeues (as Requeue does) every task whose lease ended before now.
// Any dispatcher may run it; the script makes it safe to run concurrently. Returns how many.
//
// After an outage it waits: when no recovery ran in Redis for LeaseTTL/2 (Redis was paused,
// restarting or unreachable from every dispatcher, or no dispatcher ran), it recovers nothing
// for one LeaseTTL, so that live dispatchers renew the leases that expired meanwhile instead
// of having their running tasks re-queued and charged an attempt (see scriptExpired).
func (s *Store) RecoverExpired(ctx context.Context) (int, error) {
	ea := expiredArgs{batch: leaseChunk, gap: s.cfg.LeaseTTL / 2, hold: s.cfg.LeaseTTL}
	total := 0
	for sh := range s.cfg.Shards {
		k := s.k.shard(sh)
		for range 100 { // at most 100 batches per shard and call; the next call carries on
			ids, err := s.eval(ctx, scriptExpired, ea.call(k)).StringSlice()
			if err != nil {
				return total, redisErr("recover expired", err)
			}
			if len(ids) == 0 {
				break
			}
			res, err := s.eval(ctx, scriptRecover, recoverArgs{lostArgs: s.lostArgs(), ids: ids}.call(k)).Slice()
			if err != nil {
				return total, redisErr("recover expired", err)
			}
			q, f := s.lostAnswer(ctx, res)
			total += q + f
			if len(ids) < leaseChunk {
				break
			}
		}
	}
	return total, nil
}

// leased calls fn with the ids leased in shard k, leaseChunk at a time. It reads them all
// first: the scripts fn runs remove leases, which would shift a paged read.
func (s *Store) leased(ctx context.Context, k keys, fn func(ids []string) error) error {
	all, err := s.rdb.ZRange(ctx, k.leases(), 0, -1).Result()
	if err != nil {
		return err
	}
	for len(all) > 0 {
		n := min(len(all), leaseChunk)
		if err := fn(all[:n]); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

// ownerArgs are the KEYS and ARGV of scriptRequeueOwner.
type ownerArgs struct {
	lostArgs
	owner, reason string
	ids           []string
}

func (a ownerArgs) call(k keys) call {
	extra := []any{a.owner, a.reason}
	for _, id := range a.ids {
		extra = append(extra, id)
	}
	return a.lostArgs.call(k, a.ids, extra...)
}

// scriptRequeueOwner requeues (as scriptRequeue, attempt charged) the leased tasks among ids
// whose owner is ARGV[6]: a dispatcher restarted under the same identity takes back at once
// what its previous run held, instead of waiting for the leases to expire.
//
//	KEYS, ARGV[1..5]  as luaRequeue (KEYS[6..]: one task hash per id)
//	ARGV[6]  owner
//	ARGV[7]  reason
//	ARGV[8..] ids (leased when listed)
//
// The lease of a task that is neither RUNNING nor QUEUED (finished, expired) is dropped.
// Returns the lost answer (lostAnswer).
var scriptRequeueOwner = newScript(luaPrelude + luaShard + luaFinish + luaRequeue + `
local owner, reason = ARGV[6], ARGV[7]
for j = 6, #KEYS do
  local key, id = KEYS[j], ARGV[j + 2]
  if redis.call('ZSCORE', leases_key, id) then
    local t = redis.call('HMGET', key, 'status', 'attempts', 'owner')
    if t[1] == 'RUNNING' and t[3] == owner then
      requeue(key, id, tonumber(t[2]) or 0, reason)
    elseif t[1] ~= 'RUNNING' and t[1] ~= 'QUEUED' then
      redis.call('ZREM', leases_key, id)
    end
  end
end
return announce()
`)

// requeueOwner requeues (as Requeue does, attempt charged) every RUNNING task claimed by
// owner, whatever its attempt: for a dispatcher that restarts under a stable identity (after
// a crash) to take back at once what its previous run held, instead of waiting LeaseTTL.
// Only call it with an identity no live process uses. O(leases). Returns how many tasks
// moved. No dispatcher calls it yet (their identities are not stable across restarts).
func (s *Store) requeueOwner(ctx context.Context, owner, reason string) (int, error) {
	if reason == "" {
		reason = "dispatcher " + owner + " restarted"
	}
	total := 0
	for sh := range s.cfg.Shards {
		k := s.k.shard(sh)
		err := s.leased(ctx, k, func(ids []string) error {
			a := ownerArgs{lostArgs: s.lostArgs(), owner: owner, reason: reason, ids: ids}
			res, err := s.eval(ctx, scriptRequeueOwner, a.call(k)).Slice()
			if err == nil {
				q, f := s.lostAnswer(ctx, res)
				total += q + f
			}
			return err
		})
		if err != nil {
			return total, redisErr("requeue owner", err)
		}
	}
	return total, nil
}

// straysArgs are the KEYS and ARGV of scriptReleaseStrays.
type straysArgs struct {
	owner string
	ids   []string
}

func (a straysArgs) call(k keys) call {
	argv := make([]any, 0, 2+len(a.ids))
	argv = append(argv, k.tasksChannel(), a.owner)
	for _, id := range a.ids {
		argv = append(argv, id)
	}
	return call{keys: k.taskKeys(k.shardKeys(len(a.ids)), a.ids...), argv: argv}
}

// scriptReleaseStrays hands back, uncharged, the tasks among ids leased to owner: those
// taken by a Claim whose answer was lost (the caller timed out, but Redis ran it, e.g. on
// resuming from a freeze). They go to the consumer end of the requeue list.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6..]   the task hashes, one per id
//	ARGV[1]  tasks channel
//	ARGV[2]  owner
//	ARGV[3..] ids (leased when listed, and not held by owner)
//
// Returns the number released.
var scriptReleaseStrays = newScript(luaPrelude + luaShard + `
local tasks_channel, owner = ARGV[1], ARGV[2]
local ids = {}
for j = 6, #KEYS do
  local key, id = KEYS[j], ARGV[j - 3]
  if redis.call('ZSCORE', leases_key, id) then
    local t = redis.call('HMGET', key, 'status', 'attempts', 'owner')
    if t[1] == 'RUNNING' and t[3] == owner then
      redis.call('HSET', key, 'status', 'QUEUED', 'attempts', n(math.max((tonumber(t[2]) or 1) - 1, 0)))
      redis.call('ZREM', leases_key, id)
      back_to_queue(id)
      ids[#ids + 1] = id
    end
  end
end
publish(tasks_channel, ids)
return #ids
`)

// ReleaseStrays hands back (as Release does: attempt not charged, run next) every task
// leased to owner whose id is not in held: tasks taken by a Claim whose answer never reached
// owner. Call it only while no Claim of owner is in flight, with every id owner holds.
// O(leases). Returns how many tasks went back.
func (s *Store) ReleaseStrays(ctx context.Context, owner string, held []string) (int, error) {
	keep := make(map[string]bool, len(held))
	for _, id := range held {
		keep[id] = true
	}
	total := 0
	for sh := range s.cfg.Shards {
		k := s.k.shard(sh)
		err := s.leased(ctx, k, func(ids []string) error {
			strays := ids[:0:0]
			for _, id := range ids {
				if !keep[id] {
					strays = append(strays, id)
				}
			}
			if len(strays) == 0 {
				return nil
			}
			n, err := s.eval(ctx, scriptReleaseStrays, straysArgs{owner: owner, ids: strays}.call(k)).Int()
			total += n
			return err
		})
		if err != nil {
			return total, redisErr("release strays", err)
		}
	}
	return total, nil
}
