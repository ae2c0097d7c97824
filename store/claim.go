package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// A task's run: Claim takes it from the queue under a lease, Complete records its outcome.
// Lease upkeep and recovery are in leases.go.

// claimArgs are the KEYS and ARGV of scriptClaim.
type claimArgs struct {
	owner    string
	max      int
	leaseTTL time.Duration
	taskTTL  time.Duration
}

func (a claimArgs) call(k keys) call {
	return call{
		keys: []string{k.queue(), k.leases()},
		argv: []any{k.taskPrefix(), k.functionPrefix(), a.max, a.owner,
			a.leaseTTL.Milliseconds(), a.taskTTL.Milliseconds(), k.doneChannel(),
			string(task.KindInternal)},
	}
}

// scriptClaim pops up to max QUEUED tasks, marks them RUNNING and leases them.
//
//	KEYS[1]  queue
//	KEYS[2]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  function key prefix
//	ARGV[3]  max (tasks)
//	ARGV[4]  owner
//	ARGV[5]  LeaseTTL (ms)
//	ARGV[6]  TaskTTL (ms)
//	ARGV[7]  done channel
//	ARGV[8]  failure kind of a task whose function is gone (internal)
//
// Popped ids that are not QUEUED (record expired, or a duplicate) are dropped. A task whose
// function is gone becomes FAILED with kind ARGV[8]. Returns
// {now, {id, function_id, input, attempt, ...}, {function_id, name, module, limits, ...}}
// with each function once.
var scriptClaim = redis.NewScript(luaPrelude + luaFinish + `
local queue, leases_key = KEYS[1], KEYS[2]
local task_prefix, fn_prefix, max, owner, lease_ttl, task_ttl, done_channel, no_fn_kind =
  ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local deadline = n(now_n + lease_ttl)
local tasks, fns, seen, done, leases = {}, {}, {}, {}, {}
local claimed = 0
while claimed < max do
  -- RPOP with a count (Redis 6.2+) takes what is still wanted in one call.
  local popped = redis.call('RPOP', queue, max - claimed)
  if not popped then break end
  for _, id in ipairs(popped) do
    local key = task_prefix .. id
    local t = redis.call('HMGET', key, 'status', 'function_id', 'input', 'attempts')
    if t[1] == 'QUEUED' then
      local fid = t[2] or ''
      if seen[fid] == nil then
        local f = redis.call('HMGET', fn_prefix .. fid, 'name', 'module', 'limits')
        if f[1] and f[2] then
          seen[fid] = true
          fns[#fns + 1] = fid; fns[#fns + 1] = f[1]; fns[#fns + 1] = f[2]; fns[#fns + 1] = f[3] or ''
        else
          seen[fid] = false
        end
      end
      if seen[fid] then
        local attempt = (tonumber(t[4]) or 0) + 1
        redis.call('HSET', key, 'status', 'RUNNING', 'attempts', n(attempt), 'owner', owner,
          'started', now)
        leases[#leases + 1] = deadline; leases[#leases + 1] = id
        tasks[#tasks + 1] = id; tasks[#tasks + 1] = fid; tasks[#tasks + 1] = t[3] or ''
        tasks[#tasks + 1] = attempt
        claimed = claimed + 1
      else
        finish(key, 'FAILED', task_ttl, {'err_kind', no_fn_kind, 'err_msg',
          'function ' .. tostring(fid) .. ' not found'})
        done[#done + 1] = id
      end
    end
  end
end
bulk('ZADD', leases_key, leases)
publish(done_channel, done)
return {now, tasks, fns}
`)

// Claim takes up to n tasks from the queue for owner (a dispatcher identity), marks them
// RUNNING with attempt+1 and a lease of LeaseTTL, and returns them with everything an
// executor needs (module hash, name, limits, input), in one round trip. It returns an empty
// slice, not an error, when the queue is empty.
func (s *Store) Claim(ctx context.Context, owner string, n int) ([]task.Task, error) {
	if n <= 0 {
		return []task.Task{}, nil
	}
	a := claimArgs{owner: owner, max: n, leaseTTL: s.cfg.LeaseTTL, taskTTL: s.cfg.TaskTTL}
	res, err := s.eval(ctx, scriptClaim, a.call(s.k)).Slice()
	if err != nil {
		return nil, redisErr("claim", err)
	}
	if len(res) < 3 {
		return nil, fmt.Errorf("store: claim: unexpected reply %v", res)
	}
	flat, _ := res[1].([]any)
	fnFlat, _ := res[2].([]any)
	type fnInfo struct {
		name, module string
		limits       task.Limits
	}
	fns := make(map[string]fnInfo, len(fnFlat)/4)
	for i := 0; i+3 < len(fnFlat); i += 4 {
		fid := str(fnFlat[i])
		info := fnInfo{name: str(fnFlat[i+1]), module: str(fnFlat[i+2])}
		if v, ok := s.fns.Load(fid); ok {
			info.limits = v.(Function).Limits
		} else {
			lim, err := parseLimits(str(fnFlat[i+3]))
			if err != nil {
				lim = task.DefaultLimits() // never lose a claimed task over a bad record
			}
			info.limits = lim
		}
		fns[fid] = info
	}
	out := make([]task.Task, 0, len(flat)/4)
	for i := 0; i+3 < len(flat); i += 4 {
		fid := str(flat[i+1])
		info := fns[fid]
		out = append(out, task.Task{
			ID:         str(flat[i]),
			FunctionID: fid,
			Name:       info.name,
			ModuleHash: info.module,
			Input:      []byte(str(flat[i+2])),
			Limits:     info.limits,
			Attempt:    int(num(flat[i+3])),
		})
	}
	return out, nil
}

// setWorkerArgs are the ARGV of scriptSetWorker (it has no KEYS).
type setWorkerArgs struct {
	worker string
	refs   []task.Ref
}

func (a setWorkerArgs) call(k keys) call {
	argv := make([]any, 0, 2+2*len(a.refs))
	argv = append(argv, k.taskPrefix(), a.worker)
	return call{argv: refArgs(argv, a.refs)}
}

// scriptSetWorker records the worker of tasks still at the given attempt (never creates a
// record that expired).
//
//	ARGV[1]  task key prefix
//	ARGV[2]  worker
//	ARGV[3..] id, attempt, ...
var scriptSetWorker = redis.NewScript(`
local task_prefix, worker = ARGV[1], ARGV[2]
for i = 3, #ARGV, 2 do
  local key = task_prefix .. ARGV[i]
  if tonumber(redis.call('HGET', key, 'attempts')) == tonumber(ARGV[i + 1]) then
    redis.call('HSET', key, 'worker', worker)
  end
end
return 0
`)

// setWorker records which worker runs a claimed task before it ends (Complete records it
// anyway). No caller needs that today; tests keep it working.
func (s *Store) setWorker(ctx context.Context, refs []task.Ref, worker string) error {
	if len(refs) == 0 {
		return nil
	}
	a := setWorkerArgs{worker: worker, refs: refs}
	return redisErr("set worker", s.eval(ctx, scriptSetWorker, a.call(s.k)).Err())
}

// completeArgs are the KEYS and ARGV of scriptComplete.
type completeArgs struct {
	taskTTL  time.Duration
	outcomes []task.Outcome
}

func (a completeArgs) call(k keys) call {
	argv := make([]any, 0, 3+10*len(a.outcomes))
	argv = append(argv, k.taskPrefix(), a.taskTTL.Milliseconds(), k.doneChannel())
	for _, o := range a.outcomes {
		var kind, msg string
		stdout := o.Stdout
		if o.Failure != nil {
			kind, msg = string(o.Failure.Kind), o.Failure.Message
			stdout = nil
		}
		argv = append(argv, o.ID, o.Attempt, string(o.Status()), nonNil(stdout), kind, msg,
			nonNil(o.Stderr), o.Duration.Milliseconds(), o.Worker, o.CPUUnits)
	}
	return call{keys: []string{k.leases()}, argv: argv}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// scriptComplete records outcomes; the first terminal state wins.
//
//	KEYS[1]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  TaskTTL (ms)
//	ARGV[3]  done channel
//	ARGV[4..] per outcome, 10 values: id, attempt, status (COMPLETED|FAILED), result,
//	          err_kind, err_msg, stderr, duration_ms, worker, cpu_units
//
// An outcome applies only if the task is RUNNING at that attempt; the rest (late, duplicate,
// expired) change nothing. Publishes the applied ids once on the done channel.
// Returns the number applied.
var scriptComplete = redis.NewScript(luaPrelude + `
local leases = KEYS[1]
local task_prefix, task_ttl, done_channel = ARGV[1], ARGV[2], ARGV[3]
local applied = {}
for i = 4, #ARGV, 10 do
  local id, attempt, status, result, kind, msg, stderr, duration, worker, cpu = unpack(ARGV, i, i + 9)
  local key = task_prefix .. id
  local t = redis.call('HMGET', key, 'status', 'attempts')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(attempt) then
    if status == 'COMPLETED' then
      redis.call('HSET', key, 'status', 'COMPLETED', 'finished', now, 'result', result,
        'stderr', stderr, 'duration_ms', duration, 'worker', worker, 'cpu_units', cpu)
    else
      redis.call('HSET', key, 'status', 'FAILED', 'finished', now, 'err_kind', kind,
        'err_msg', msg, 'stderr', stderr, 'duration_ms', duration, 'worker', worker, 'cpu_units', cpu)
    end
    redis.call('HDEL', key, 'input')
    redis.call('PEXPIRE', key, task_ttl)
    applied[#applied + 1] = id
  end
end
bulk('ZREM', leases, applied)
publish(done_channel, applied)
return #applied
`)

// Complete records outcomes in one round trip: for each, only if the task is RUNNING at that
// same attempt does it become COMPLETED/FAILED (first terminal state wins); the lease is
// dropped, the record gets TaskTTL, and waiters are woken on "faas:done". It returns how
// many outcomes were applied (the rest were late or duplicates).
func (s *Store) Complete(ctx context.Context, outcomes []task.Outcome) (int, error) {
	if len(outcomes) == 0 {
		return 0, nil
	}
	a := completeArgs{taskTTL: s.cfg.TaskTTL, outcomes: outcomes}
	n, err := s.eval(ctx, scriptComplete, a.call(s.k)).Int()
	if err != nil {
		return 0, redisErr("complete", err)
	}
	return n, nil
}
