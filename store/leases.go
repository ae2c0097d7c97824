package store

import (
	"context"
	"time"

	"faas/task"
)

// Leases: a claimed task holds a lease (a deadline in the leases zset of its shard) that
// its dispatcher renews. Tasks come back (to the shard's requeue list, which Claim serves
// first) when their worker is lost (Requeue, attempt charged), when they never started
// (Release, not charged), when their lease ran out (RecoverExpired, recover.go), when a
// restarted dispatcher takes back what it held (requeueOwner), or when a Claim's answer was
// lost (ReleaseStrays).

// renewArgs are the KEYS and ARGV of scriptRenew.
type renewArgs struct {
	leaseTTL time.Duration
	refs     []task.Ref
}

func (a renewArgs) call(k keys) call {
	argv := make([]any, 0, 1+2*len(a.refs))
	argv = append(argv, a.leaseTTL.Milliseconds())
	ks := k.shardKeys(len(a.refs))
	for _, r := range a.refs {
		ks = k.taskKeys(ks, r.ID)
	}
	return call{keys: ks, argv: refArgs(argv, a.refs)}
}

// scriptRenew extends leases of tasks still RUNNING at the given attempt.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6..]   the task hashes, one per ref
//	ARGV[1]  LeaseTTL (ms)
//	ARGV[2..] id, attempt, id, attempt, ...
//
// Returns the ids that were NOT renewed (no longer this attempt's: finished, requeued,
// expired): their holder should stop reporting on them.
var scriptRenew = newScript(luaPrelude + luaShard + `
local deadline = n(now_n + tonumber(ARGV[1]))
local lost = {}
for j = 6, #KEYS do
  local i = 2 * (j - 6) + 2
  local t = redis.call('HMGET', KEYS[j], 'status', 'attempts')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(ARGV[i + 1]) then
    redis.call('ZADD', leases_key, 'XX', deadline, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
`)

// Renew extends the leases of refs to now+LeaseTTL, one round trip per shard. It returns
// the ids whose lease could not be renewed because the task is no longer RUNNING at that
// attempt (finished, re-queued after its lease expired, or expired): whoever runs them
// should stop, their result would be ignored.
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

// lostArgs are the first ARGV shared by the scripts that charge an attempt to a task whose
// worker is lost; luaRequeue reads them. Each such script's own ARGV follow; their KEYS
// are the shard's, then the task hashes.
type lostArgs struct {
	maxAttempts int
	taskTTL     time.Duration
}

func (s *Store) lostArgs() lostArgs {
	return lostArgs{maxAttempts: s.cfg.MaxAttempts, taskTTL: s.cfg.TaskTTL}
}

func (a lostArgs) call(k keys, ids []string, extra ...any) call {
	argv := []any{a.maxAttempts, a.taskTTL.Milliseconds(), k.doneChannel(), k.tasksChannel(),
		string(task.KindWorkerLost)}
	return call{keys: k.taskKeys(k.shardKeys(len(ids)), ids...), argv: append(argv, extra...)}
}

// luaRequeue puts one RUNNING task back (charged attempt), or fails it with the lost kind
// once it has used MaxAttempts; announce then publishes what moved. Needs luaPrelude,
// luaShard and luaFinish.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6..]   task hashes
//	ARGV[1]  MaxAttempts
//	ARGV[2]  TaskTTL (ms)
//	ARGV[3]  done channel
//	ARGV[4]  tasks channel
//	ARGV[5]  failure kind of a task whose worker was lost too often (worker_lost)
const luaRequeue = `
local max_attempts, task_ttl, done_channel, tasks_channel, lost_kind =
  tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local done, queued = {}, {}
local lost = {#queued, #done, now} -- the scripts' answer (lostAnswer): counts set at the end
local function requeue(key, id, attempts, reason)
  redis.call('ZREM', leases_key, id)
  if attempts >= max_attempts then
    local msg = 'worker lost on attempt ' .. n(attempts) .. ' of ' .. n(max_attempts) .. ' (' .. reason .. '); not retried'
    finish(key, 'FAILED', task_ttl, {'err_kind', lost_kind, 'err_msg', msg})
    done[#done + 1] = id
    local t = redis.call('HMGET', key, 'ns', 'function_id')
    lost[#lost + 1] = id
    lost[#lost + 1] = t[1] or ''
    lost[#lost + 1] = t[2] or ''
    lost[#lost + 1] = msg
  else
    redis.call('HSET', key, 'status', 'QUEUED')
    back_to_queue(id)
    queued[#queued + 1] = id
  end
end
local function announce()
  publish(done_channel, done)
  publish(tasks_channel, queued)
  lost[1], lost[2] = #queued, #done
  return lost
end
`

// requeueArgs are the KEYS and ARGV of scriptRequeue.
type requeueArgs struct {
	lostArgs
	reason string
	refs   []task.Ref
}

func (a requeueArgs) call(k keys) call {
	ids := make([]string, len(a.refs))
	for i, r := range a.refs {
		ids[i] = r.ID
	}
	return a.lostArgs.call(k, ids, refArgs([]any{a.reason}, a.refs)...)
}

// scriptRequeue hands back tasks whose worker was lost (attempt charged).
//
//	KEYS, ARGV[1..5]  as luaRequeue (KEYS[6..]: one task hash per ref)
//	ARGV[6]   reason
//	ARGV[7..] id, attempt, id, attempt, ...
//
// Only tasks RUNNING at that attempt move; they go to the consumer end of the requeue list
// (they run next), the first ref first. Returns the lost answer (lostAnswer).
var scriptRequeue = newScript(luaPrelude + luaShard + luaFinish + luaRequeue + `
local reason = ARGV[6]
-- Backwards: each RPUSH lands at the consumer end, so the first ref is claimed again first.
for j = #KEYS, 6, -1 do
  local key, i = KEYS[j], 7 + 2 * (j - 6)
  local t = redis.call('HMGET', key, 'status', 'attempts')
  local a = tonumber(t[2])
  if t[1] == 'RUNNING' and a == tonumber(ARGV[i + 1]) then
    requeue(key, ARGV[i], a, reason)
  end
end
return announce()
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
		res, err := s.eval(ctx, scriptRequeue, a.call(s.k.shard(sh))).Slice()
		if err != nil {
			return requeued, failed, redisErr("requeue", err)
		}
		q, f := s.lostAnswer(ctx, res)
		requeued, failed = requeued+q, failed+f
	}
	return requeued, failed, nil
}

// releaseArgs are the KEYS and ARGV of scriptRelease.
type releaseArgs struct{ refs []task.Ref }

func (a releaseArgs) call(k keys) call {
	argv := make([]any, 0, 1+2*len(a.refs))
	argv = append(argv, k.tasksChannel())
	ks := k.shardKeys(len(a.refs))
	for _, r := range a.refs {
		ks = k.taskKeys(ks, r.ID)
	}
	return call{keys: ks, argv: refArgs(argv, a.refs)}
}

// scriptRelease hands back tasks that never started (attempt not charged), at the consumer
// end of the requeue list so they run next, in their original order.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6..]   the task hashes, one per ref
//	ARGV[1]  tasks channel
//	ARGV[2..] id, attempt, id, attempt, ... (in claim order)
//
// Returns the number released.
var scriptRelease = newScript(luaPrelude + luaShard + `
local tasks_channel = ARGV[1]
local ids = {}
for j = #KEYS, 6, -1 do
  local key, i = KEYS[j], 2 + 2 * (j - 6)
  local t = redis.call('HMGET', key, 'status', 'attempts')
  local a = tonumber(t[2])
  if t[1] == 'RUNNING' and a == tonumber(ARGV[i + 1]) then
    redis.call('HSET', key, 'status', 'QUEUED', 'attempts', n(a - 1))
    redis.call('ZREM', leases_key, ARGV[i])
    back_to_queue(ARGV[i])
    ids[#ids + 1] = ARGV[i]
  end
end
publish(tasks_channel, ids)
return #ids
`)

// Release hands back tasks never started (graceful shutdown): back to the queue's head
// with the attempt not counted. Refs are given in claim order; they are put back so that
// they are claimed again in that order (within each shard).
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
