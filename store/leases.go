package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Leases: a claimed task holds a lease (a deadline in the leases zset) that its dispatcher
// renews. Tasks come back to the queue when their worker is lost (Requeue, attempt charged),
// when they never started (Release, not charged), when their lease ran out (RecoverExpired),
// when a restarted dispatcher takes back what it held (requeueOwner), or when a Claim's
// answer was lost (ReleaseStrays).

// recoverBatch bounds the leases one RecoverExpired script examines, so that one call
// never blocks Redis for long; RecoverExpired loops while batches come back full.
const recoverBatch = 1000

// renewArgs are the KEYS and ARGV of scriptRenew.
type renewArgs struct {
	leaseTTL time.Duration
	refs     []task.Ref
}

func (a renewArgs) call(k keys) call {
	argv := make([]any, 0, 2+2*len(a.refs))
	argv = append(argv, k.taskPrefix(), a.leaseTTL.Milliseconds())
	return call{keys: []string{k.leases()}, argv: refArgs(argv, a.refs)}
}

// scriptRenew extends leases of tasks still RUNNING at the given attempt.
//
//	KEYS[1]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  LeaseTTL (ms)
//	ARGV[3..] id, attempt, id, attempt, ...
//
// Returns the ids that were NOT renewed (no longer this attempt's: finished, requeued,
// expired): their holder should stop reporting on them.
var scriptRenew = redis.NewScript(luaPrelude + `
local leases = KEYS[1]
local task_prefix, lease_ttl = ARGV[1], tonumber(ARGV[2])
local deadline = n(now_n + lease_ttl)
local lost = {}
for i = 3, #ARGV, 2 do
  local t = redis.call('HMGET', task_prefix .. ARGV[i], 'status', 'attempts')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(ARGV[i + 1]) then
    redis.call('ZADD', leases, 'XX', deadline, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
`)

// Renew extends the leases of refs to now+LeaseTTL, in one round trip. It returns the ids
// whose lease could not be renewed because the task is no longer RUNNING at that attempt
// (finished, re-queued after its lease expired, or expired): whoever runs them should stop,
// their result would be ignored.
func (s *Store) Renew(ctx context.Context, refs []task.Ref) (lost []string, err error) {
	if len(refs) == 0 {
		return nil, nil
	}
	for sh, group := range byShard(s.k, refs, refID) {
		a := renewArgs{leaseTTL: s.cfg.LeaseTTL, refs: group}
		l, err := s.eval(ctx, scriptRenew, a.call(s.k.shard(sh))).StringSlice()
		if err != nil {
			return nil, redisErr("renew", err)
		}
		lost = append(lost, l...)
	}
	return lost, nil
}

// lostArgs are the KEYS and the first ARGV shared by the scripts that charge an attempt to
// a task whose worker is lost; luaRequeue reads them. Each such script's own ARGV follow.
type lostArgs struct {
	maxAttempts int
	taskTTL     time.Duration
}

func (s *Store) lostArgs() lostArgs {
	return lostArgs{maxAttempts: s.cfg.MaxAttempts, taskTTL: s.cfg.TaskTTL}
}

func (a lostArgs) call(k keys, extra ...any) call {
	argv := []any{k.taskPrefix(), a.maxAttempts, a.taskTTL.Milliseconds(),
		k.doneChannel(), k.tasksChannel(), string(task.KindWorkerLost)}
	return call{keys: []string{k.queue(), k.leases()}, argv: append(argv, extra...)}
}

// luaRequeue puts one RUNNING task back (charged attempt), or fails it with the lost kind
// once it has used MaxAttempts; announce then publishes what moved. Needs luaPrelude,
// luaQueues and luaFinish.
//
//	KEYS[1]  queue (of the default namespace: a task goes back to its own namespace's)
//	KEYS[2]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  MaxAttempts
//	ARGV[3]  TaskTTL (ms)
//	ARGV[4]  done channel
//	ARGV[5]  tasks channel
//	ARGV[6]  failure kind of a task whose worker was lost too often (worker_lost)
const luaRequeue = `
local queue, leases = KEYS[1], KEYS[2]
local task_prefix, max_attempts, task_ttl, done_channel, tasks_channel, lost_kind =
  ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local done, queued = {}, {}
local function requeue(key, id, attempts, reason)
  redis.call('ZREM', leases, id)
  if attempts >= max_attempts then
    finish(key, 'FAILED', task_ttl, {'err_kind', lost_kind, 'err_msg',
      'worker lost on attempt ' .. n(attempts) .. ' of ' .. n(max_attempts) .. ' (' .. reason .. '); not retried'})
    done[#done + 1] = id
  else
    redis.call('HSET', key, 'status', 'QUEUED')
    back_to_queue(key, id)
    queued[#queued + 1] = id
  end
end
local function announce()
  publish(done_channel, done)
  publish(tasks_channel, queued)
end
`

// requeueArgs are the KEYS and ARGV of scriptRequeue.
type requeueArgs struct {
	lostArgs
	reason string
	refs   []task.Ref
}

func (a requeueArgs) call(k keys) call {
	return a.lostArgs.call(k, refArgs([]any{a.reason}, a.refs)...)
}

// scriptRequeue hands back tasks whose worker was lost (attempt charged).
//
//	KEYS, ARGV[1..6]  as luaRequeue
//	ARGV[7]   reason
//	ARGV[8..] id, attempt, id, attempt, ...
//
// Only tasks RUNNING at that attempt move; they go to the consumer end of the queue (they
// run next), the first ref first. Returns {requeued, failed}.
var scriptRequeue = redis.NewScript(luaPrelude + luaQueues + luaFinish + luaRequeue + `
local reason = ARGV[7]
-- Backwards: each RPUSH lands at the consumer end, so the first ref is claimed again first.
for i = #ARGV - 1, 8, -2 do
  local key = task_prefix .. ARGV[i]
  local t = redis.call('HMGET', key, 'status', 'attempts')
  local a = tonumber(t[2])
  if t[1] == 'RUNNING' and a == tonumber(ARGV[i + 1]) then
    requeue(key, ARGV[i], a, reason)
  end
end
announce()
return {#queued, #done}
`)

// Requeue puts back tasks whose worker was lost: each still RUNNING at that attempt goes back
// to the queue (QUEUED) if attempts < MaxAttempts, else becomes FAILED kind worker_lost.
// It reports how many went back to the queue and how many failed.
func (s *Store) Requeue(ctx context.Context, refs []task.Ref, reason string) (requeued, failed int, err error) {
	if len(refs) == 0 {
		return 0, 0, nil
	}
	if reason == "" {
		reason = "worker lost"
	}
	for sh, group := range byShard(s.k, refs, refID) {
		a := requeueArgs{lostArgs: s.lostArgs(), reason: reason, refs: group}
		res, err := s.eval(ctx, scriptRequeue, a.call(s.k.shard(sh))).Int64Slice()
		if err != nil {
			return requeued, failed, redisErr("requeue", err)
		}
		requeued, failed = requeued+int(res[0]), failed+int(res[1])
	}
	return requeued, failed, nil
}

// recoverArgs are the KEYS and ARGV of scriptRecover.
type recoverArgs struct {
	lostArgs
	batch int
	gap   time.Duration
	hold  time.Duration
}

func (a recoverArgs) call(k keys) call {
	c := a.lostArgs.call(k, a.batch, a.gap.Milliseconds(), a.hold.Milliseconds())
	c.keys = append(c.keys, k.recoverer())
	return c
}

// scriptRecover requeues (as scriptRequeue) tasks whose lease deadline has passed.
//
//	KEYS, ARGV[1..6]  as luaRequeue
//	KEYS[3]  recoverer clock (hash: last = the previous run, hold = no recovery before)
//	ARGV[7]  batch limit
//	ARGV[8]  gap (ms): a previous run older than this means Redis or every dispatcher was away
//	ARGV[9]  hold (ms): how long recovery then waits
//
// A lease whose task is no longer RUNNING (finished, expired) is just dropped. Atomic, so
// several dispatchers may run it at once: each expired lease is handled by exactly one.
//
// Outage guard: Redis's clock runs on while Redis is paused, restarting or cut off from every
// dispatcher, so after an outage longer than LeaseTTL every lease has expired, those of live
// dispatchers included; and a recovery sent during the outage may be executed when Redis
// comes back. So when the previous run is older than the gap (recoverers run every
// LeaseTTL/4; the very first run has no previous one), recovery waits `hold`, long enough
// for the live dispatchers to renew their leases (a renewal succeeds while the task is
// RUNNING at that attempt, even past its deadline). Only Redis's own clock is used.
// Returns {requeued, failed, leases examined}.
var scriptRecover = redis.NewScript(luaPrelude + luaQueues + luaFinish + luaRequeue + `
local recoverer = KEYS[3]
local batch, gap, hold_for = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local clock = redis.call('HMGET', recoverer, 'last', 'hold')
local last, hold = tonumber(clock[1]), tonumber(clock[2]) or 0
if last ~= nil and now_n - last > gap then
  hold = now_n + hold_for
  redis.call('HSET', recoverer, 'hold', n(hold))
end
redis.call('HSET', recoverer, 'last', now)
if now_n < hold then return {0, 0, 0} end
local ids = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, batch)
for j = #ids, 1, -1 do -- backwards: the lease that expired first is claimed again first
  local id = ids[j]
  local key = task_prefix .. id
  local t = redis.call('HMGET', key, 'status', 'attempts')
  if t[1] == 'RUNNING' then
    requeue(key, id, tonumber(t[2]) or 0, 'lease expired')
  else
    redis.call('ZREM', leases, id)
  end
end
announce()
return {#queued, #done, #ids}
`)

// RecoverExpired requeues (as Requeue does) every task whose lease ended before now.
// Any dispatcher may run it; the script makes it safe to run concurrently. Returns how many.
//
// After an outage it waits: when no recovery ran in Redis for LeaseTTL/2 (Redis was paused,
// restarting or unreachable from every dispatcher, or no dispatcher ran), it recovers nothing
// for one LeaseTTL, so that live dispatchers renew the leases that expired meanwhile instead
// of having their running tasks re-queued and charged an attempt (see scriptRecover).
func (s *Store) RecoverExpired(ctx context.Context) (int, error) {
	a := recoverArgs{lostArgs: s.lostArgs(), batch: recoverBatch,
		gap: s.cfg.LeaseTTL / 2, hold: s.cfg.LeaseTTL}
	total := 0
	for sh := range s.cfg.Shards {
		for range 100 { // at most 100 batches per shard and call; the next call carries on
			res, err := s.eval(ctx, scriptRecover, a.call(s.k.shard(sh))).Int64Slice()
			if err != nil {
				return total, redisErr("recover expired", err)
			}
			total += int(res[0] + res[1])
			if res[2] < recoverBatch {
				break
			}
		}
	}
	return total, nil
}

// requeueOwnerArgs are the KEYS and ARGV of scriptRequeueOwner.
type requeueOwnerArgs struct {
	lostArgs
	owner  string
	reason string
}

func (a requeueOwnerArgs) call(k keys) call { return a.lostArgs.call(k, a.owner, a.reason) }

// scriptRequeueOwner requeues (as scriptRequeue, attempt charged) every leased task whose
// owner is ARGV[7]: a dispatcher restarted under the same identity takes back at once what
// its previous run held, instead of waiting for the leases to expire.
//
//	KEYS, ARGV[1..6]  as luaRequeue
//	ARGV[7]  owner
//	ARGV[8]  reason
//
// O(leases): every lease is examined. Returns {requeued, failed}.
var scriptRequeueOwner = redis.NewScript(luaPrelude + luaQueues + luaFinish + luaRequeue + `
local owner, reason = ARGV[7], ARGV[8]
for _, id in ipairs(redis.call('ZRANGE', leases, 0, -1)) do
  local key = task_prefix .. id
  local t = redis.call('HMGET', key, 'status', 'attempts', 'owner')
  if t[1] ~= 'RUNNING' then
    redis.call('ZREM', leases, id)
  elseif t[3] == owner then
    requeue(key, id, tonumber(t[2]) or 0, reason)
  end
end
announce()
return {#queued, #done}
`)

// requeueOwner requeues (as Requeue does, attempt charged) every RUNNING task claimed by
// owner, whatever its attempt: for a dispatcher that restarts under a stable identity (after
// a crash) to take back at once what its previous run held, instead of waiting LeaseTTL.
// Only call it with an identity no live process uses. Returns how many tasks moved.
// No dispatcher calls it yet (their identities are not stable across restarts).
func (s *Store) requeueOwner(ctx context.Context, owner, reason string) (int, error) {
	if reason == "" {
		reason = "dispatcher " + owner + " restarted"
	}
	a := requeueOwnerArgs{lostArgs: s.lostArgs(), owner: owner, reason: reason}
	total := 0
	for sh := range s.cfg.Shards {
		res, err := s.eval(ctx, scriptRequeueOwner, a.call(s.k.shard(sh))).Int64Slice()
		if err != nil {
			return total, redisErr("requeue owner", err)
		}
		total += int(res[0] + res[1])
	}
	return total, nil
}

// releaseArgs are the KEYS and ARGV of scriptRelease.
type releaseArgs struct{ refs []task.Ref }

func (a releaseArgs) call(k keys) call {
	argv := make([]any, 0, 2+2*len(a.refs))
	argv = append(argv, k.taskPrefix(), k.tasksChannel())
	return call{keys: []string{k.queue(), k.leases()}, argv: refArgs(argv, a.refs)}
}

// scriptRelease hands back tasks that never started (attempt not charged), at the consumer
// end of the queue so they run next, in their original order.
//
//	KEYS[1]  queue
//	KEYS[2]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  tasks channel
//	ARGV[3..] id, attempt, id, attempt, ... (in claim order)
//
// Returns the number released.
var scriptRelease = redis.NewScript(luaPrelude + luaQueues + `
local queue, leases = KEYS[1], KEYS[2]
local task_prefix, tasks_channel = ARGV[1], ARGV[2]
local ids = {}
for i = #ARGV - 1, 3, -2 do
  local key = task_prefix .. ARGV[i]
  local t = redis.call('HMGET', key, 'status', 'attempts')
  local a = tonumber(t[2])
  if t[1] == 'RUNNING' and a == tonumber(ARGV[i + 1]) then
    redis.call('HSET', key, 'status', 'QUEUED', 'attempts', n(a - 1))
    redis.call('ZREM', leases, ARGV[i])
    back_to_queue(key, ARGV[i])
    ids[#ids + 1] = ARGV[i]
  end
end
publish(tasks_channel, ids)
return #ids
`)

// Release hands back tasks never started (graceful shutdown): back to the queue's head
// with the attempt not counted. Refs are given in claim order; they are put back so that
// they are claimed again in that order.
func (s *Store) Release(ctx context.Context, refs []task.Ref) error {
	if len(refs) == 0 {
		return nil
	}
	for sh, group := range byShard(s.k, refs, refID) {
		if err := s.eval(ctx, scriptRelease, releaseArgs{refs: group}.call(s.k.shard(sh))).Err(); err != nil {
			return redisErr("release", err)
		}
	}
	return nil
}

// straysArgs are the KEYS and ARGV of scriptReleaseStrays.
type straysArgs struct {
	owner string
	held  []string
}

func (a straysArgs) call(k keys) call {
	argv := make([]any, 0, 3+len(a.held))
	argv = append(argv, k.taskPrefix(), k.tasksChannel(), a.owner)
	for _, id := range a.held {
		argv = append(argv, id)
	}
	return call{keys: []string{k.queue(), k.leases()}, argv: argv}
}

// scriptReleaseStrays hands back, uncharged, the tasks leased to owner that the owner does
// not hold: those taken by a Claim whose answer was lost (the caller timed out, but Redis
// ran it, e.g. on resuming from a freeze). They go to the consumer end of the queue.
//
//	KEYS[1]  queue
//	KEYS[2]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  tasks channel
//	ARGV[3]  owner
//	ARGV[4..] ids the owner holds
//
// O(leases): every lease is examined. Returns the number released.
var scriptReleaseStrays = redis.NewScript(luaPrelude + luaQueues + `
local queue, leases = KEYS[1], KEYS[2]
local task_prefix, tasks_channel, owner = ARGV[1], ARGV[2], ARGV[3]
local held = {}
for i = 4, #ARGV do held[ARGV[i]] = true end
local ids = {}
for _, id in ipairs(redis.call('ZRANGE', leases, 0, -1)) do
  if not held[id] then
    local key = task_prefix .. id
    local t = redis.call('HMGET', key, 'status', 'attempts', 'owner')
    if t[1] == 'RUNNING' and t[3] == owner then
      redis.call('HSET', key, 'status', 'QUEUED', 'attempts', n(math.max((tonumber(t[2]) or 1) - 1, 0)))
      redis.call('ZREM', leases, id)
      back_to_queue(key, id)
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
	groups := byShard(s.k, held, strID)
	total := 0
	for sh := range s.cfg.Shards {
		a := straysArgs{owner: owner, held: groups[sh]}
		n, err := s.eval(ctx, scriptReleaseStrays, a.call(s.k.shard(sh))).Int()
		if err != nil {
			return total, redisErr("release strays", err)
		}
		total += n
	}
	return total, nil
}
