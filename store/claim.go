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
// Fair share: the namespaces with queued tasks form a ring (luaQueues); each turn takes the
// ring's head, moves it to the tail and pops that namespace's share of what is still wanted
// (at least one task), FIFO within the namespace. A namespace found drained leaves the ring.
// The ring lives in Redis, so the rotation is shared by every dispatcher and every claim,
// whatever its size: one namespace's backlog delays another's task by one turn, not by the
// backlog.
//
//	KEYS[1]  queue (of the default namespace; the others are named from ARGV[1], luaQueues)
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
var scriptClaim = redis.NewScript(luaPrelude + luaQueues + luaFinish + `
local queue, leases_key = KEYS[1], KEYS[2]
local task_prefix, fn_prefix, max, owner, lease_ttl, task_ttl, done_channel, no_fn_kind =
  ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local deadline = n(now_n + lease_ttl)
local tasks, fns, seen, done, leases = {}, {}, {}, {}, {}
local claimed = 0
-- Popped tasks that are not claimed (a deleted function's, which fail here) count against a
-- budget: one script never walks a whole backlog of them; the next claim carries on.
local budget = 4 * max + 100
-- Tasks queued before namespaces existed (or by an older faas) are on the default queue
-- without a ring entry.
if redis.call('LLEN', queue) > 0 then announce_ns('default') end
while claimed < max and budget > 0 do
  local turns = redis.call('LLEN', ring_key)
  if turns == 0 then break end
  local ns = redis.call('LMOVE', ring_key, ring_key, 'LEFT', 'RIGHT')
  local share = math.max(1, math.floor((max - claimed) / turns))
  -- RPOP with a count (Redis 6.2+) takes the share in one call.
  local popped = redis.call('RPOP', queue_of(ns), share) or {}
  budget = budget - #popped
  if #popped < share then
    redis.call('LREM', ring_key, -1, ns)
    redis.call('SREM', nsq_key, ns)
  end
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
          'function ' .. tostring(fid) .. ' was deleted before the task ran'})
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

// SentTo is a batch of tasks sent to one remote worker: Worker names it in the task
// record (a label the worker chose), Via is the identity of the connection it was sent on
// (derived from the worker's authenticated key), which Complete checks.
type SentTo struct {
	Worker string
	Via    string
	Refs   []task.Ref
}

// sentArgs are the ARGV of scriptSent (it has no KEYS).
type sentArgs struct{ batches []SentTo }

func (a sentArgs) call(k keys) call {
	argv := []any{k.taskPrefix()}
	for _, b := range a.batches {
		for _, r := range b.Refs {
			argv = append(argv, r.ID, r.Attempt, b.Worker, b.Via)
		}
	}
	return call{argv: argv}
}

// scriptSent records the worker and the connection of tasks still RUNNING at the given
// attempt (never creates a record that expired).
//
//	ARGV[1]  task key prefix
//	ARGV[2..] per task, 4 values: id, attempt, worker, via
var scriptSent = redis.NewScript(`
local task_prefix = ARGV[1]
for i = 2, #ARGV, 4 do
  local key = task_prefix .. ARGV[i]
  local t = redis.call('HMGET', key, 'status', 'attempts')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(ARGV[i + 1]) then
    redis.call('HSET', key, 'worker', ARGV[i + 2], 'sent_to', ARGV[i + 3])
  end
end
return 0
`)

// Sent records, in one round trip, which worker and connection each task was sent to, so
// that CompleteFrom accepts its outcome only from that connection (also after a restart of
// the dispatcher, whose memory of what it sent is gone).
func (s *Store) Sent(ctx context.Context, batches []SentTo) error {
	n := 0
	for _, b := range batches {
		n += len(b.Refs)
	}
	if n == 0 {
		return nil
	}
	return redisErr("sent", s.eval(ctx, scriptSent, sentArgs{batches: batches}.call(s.k)).Err())
}

// completeArgs are the KEYS and ARGV of scriptComplete.
type completeArgs struct {
	taskTTL  time.Duration
	outcomes []task.Outcome
	via      []string // per outcome, or nil: the connection it came from ("" unchecked)
}

func (a completeArgs) call(k keys) call {
	argv := make([]any, 0, 3+11*len(a.outcomes))
	argv = append(argv, k.taskPrefix(), a.taskTTL.Milliseconds(), k.doneChannel())
	for i, o := range a.outcomes {
		via := ""
		if a.via != nil {
			via = a.via[i]
		}
		var kind, msg string
		stdout := o.Stdout
		if o.Failure != nil {
			kind, msg = string(o.Failure.Kind), o.Failure.Message
			stdout = nil
		}
		argv = append(argv, o.ID, o.Attempt, string(o.Status()), nonNil(stdout), kind, msg,
			nonNil(o.Stderr), o.Duration.Milliseconds(), o.Worker, via, o.CPUUnits)
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
//	ARGV[4..] per outcome, 11 values: id, attempt, status (COMPLETED|FAILED), result,
//	          err_kind, err_msg, stderr, duration_ms, worker, via, cpu_units
//
// An outcome applies only if the task is RUNNING at that attempt and, when via is not
// empty (a remote worker's), was sent on that connection (Sent recorded it); the rest (late,
// duplicate, expired, from another worker) change nothing. Publishes the applied ids once on the done channel.
// Returns {now (ms), then per applied outcome: id, namespace ("" default), function id}:
// what the dashboard's history (history.go) and the function logs (logs.go) need, read
// here because the script has the record in hand; both are written by Go, after the script.
var scriptComplete = redis.NewScript(luaPrelude + luaQueues + `
local leases = KEYS[1]
local task_prefix, task_ttl, done_channel = ARGV[1], ARGV[2], ARGV[3]
local applied = {}
local info = {now}
for i = 4, #ARGV, 11 do
  local id, attempt, status, result, kind, msg, stderr, duration, worker, via, cpu = unpack(ARGV, i, i + 10)
  local key = task_prefix .. id
  local t = redis.call('HMGET', key, 'status', 'attempts', 'sent_to', 'ns', 'function_id')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(attempt) and (via == '' or t[3] == via) then
    count_done(key)
    if status == 'COMPLETED' then
      redis.call('HSET', key, 'status', 'COMPLETED', 'finished', now, 'result', result,
        'stderr', stderr, 'duration_ms', duration, 'worker', worker, 'cpu_units', cpu)
    else
      redis.call('HSET', key, 'status', 'FAILED', 'finished', now, 'err_kind', kind,
        'err_msg', msg, 'stderr', stderr, 'duration_ms', duration, 'worker', worker, 'cpu_units', cpu)
    end
    redis.call('HDEL', key, 'input', 'sent_to')
    redis.call('PEXPIRE', key, task_ttl)
    applied[#applied + 1] = id
    info[#info + 1] = id
    info[#info + 1] = t[4] or ''
    info[#info + 1] = t[5] or ''
  end
end
bulk('ZREM', leases, applied)
publish(done_channel, applied)
return info
`)

// Complete records outcomes in one round trip: for each, only if the task is RUNNING at that
// same attempt does it become COMPLETED/FAILED (first terminal state wins); the lease is
// dropped, the record gets TaskTTL, and waiters are woken on "faas:done". It returns how
// many outcomes were applied (the rest were late or duplicates).
func (s *Store) Complete(ctx context.Context, outcomes []task.Outcome) (int, error) {
	return s.CompleteFrom(ctx, outcomes, nil)
}

// CompleteFrom is Complete for outcomes that came from remote workers: via[i] is the
// connection outcomes[i] came on, and it applies only if the task was Sent on that same
// connection ("" skips the check: an outcome of this process). via may be nil (all "").
func (s *Store) CompleteFrom(ctx context.Context, outcomes []task.Outcome, via []string) (int, error) {
	if len(outcomes) == 0 {
		return 0, nil
	}
	if via != nil && len(via) != len(outcomes) {
		return 0, fmt.Errorf("store: complete: %d outcomes, %d connections", len(outcomes), len(via))
	}
	a := completeArgs{taskTTL: s.cfg.TaskTTL, outcomes: outcomes, via: via}
	res, err := s.eval(ctx, scriptComplete, a.call(s.k)).StringSlice()
	if err != nil {
		return 0, redisErr("complete", err)
	}
	if len(res) < 1 || (len(res)-1)%3 != 0 {
		return 0, fmt.Errorf("store: complete: the script answered %d values", len(res))
	}
	n := (len(res) - 1) / 3
	if n > 0 {
		// After the script, never inside it: the history and the logs are keys of their own
		// (other slots on a sharded Cluster), and an outcome is recorded even if they are not.
		s.recordAfterComplete(ctx, outcomes, res)
	}
	return n, nil
}

// sentModuleArgs are the ARGV of scriptSentModule (it has no KEYS).
type sentModuleArgs struct {
	via, hash string
	refs      []task.Ref
}

func (a sentModuleArgs) call(k keys) call {
	argv := make([]any, 0, 4+2*len(a.refs))
	argv = append(argv, k.taskPrefix(), k.functionPrefix(), a.via, a.hash)
	return call{argv: refArgs(argv, a.refs)}
}

// scriptSentModule reports whether one of the tasks is RUNNING at its attempt, was sent on
// connection via, and runs module hash.
//
//	ARGV[1]  task key prefix
//	ARGV[2]  function key prefix
//	ARGV[3]  via
//	ARGV[4]  module hash
//	ARGV[5..] id, attempt, ...
var scriptSentModule = redis.NewScript(`
local task_prefix, fn_prefix, via, hash = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
for i = 5, #ARGV, 2 do
  local t = redis.call('HMGET', task_prefix .. ARGV[i], 'status', 'attempts', 'sent_to', 'function_id')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(ARGV[i + 1]) and t[3] == via and t[4] then
    if redis.call('HGET', fn_prefix .. t[4], 'module') == hash then return 1 end
  end
end
return 0
`)

// SentModule reports whether one of refs was sent on connection via (see Sent), is still
// RUNNING at that attempt and runs the module hash: a worker may then fetch the module,
// also from a dispatcher that did not send the task itself (it restarted since).
func (s *Store) SentModule(ctx context.Context, via, hash string, refs []task.Ref) (bool, error) {
	if len(refs) == 0 || via == "" {
		return false, nil
	}
	n, err := s.eval(ctx, scriptSentModule, sentModuleArgs{via: via, hash: hash, refs: refs}.call(s.k)).Int()
	if err != nil {
		return false, redisErr("sent module", err)
	}
	return n == 1, nil
}
