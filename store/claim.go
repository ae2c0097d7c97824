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
}

func (a claimArgs) call(k keys) call {
	return call{
		keys: []string{k.queue(), k.leases()},
		argv: []any{k.taskPrefix(), a.max, a.owner, a.leaseTTL.Milliseconds()},
	}
}

// scriptClaim pops up to max QUEUED tasks of one shard, marks them RUNNING and leases them.
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
//	ARGV[2]  max (tasks)
//	ARGV[3]  owner
//	ARGV[4]  LeaseTTL (ms)
//
// Popped ids that are not QUEUED (record expired, or a duplicate) are dropped. The
// functions are not read here: they live in another slot of a Redis Cluster (Claim reads
// them). Returns {now, {id, function_id, input, attempt, ...}, popped}.
var scriptClaim = redis.NewScript(luaPrelude + luaQueues + `
local queue, leases_key = KEYS[1], KEYS[2]
local task_prefix, max, owner, lease_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local deadline = n(now_n + lease_ttl)
local tasks, leases = {}, {}
local claimed = 0
-- Popped ids without a QUEUED record count against a budget: one script never walks a
-- whole backlog of them; the next claim carries on.
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
      local attempt = (tonumber(t[4]) or 0) + 1
      redis.call('HSET', key, 'status', 'RUNNING', 'attempts', n(attempt), 'owner', owner,
        'started', now)
      leases[#leases + 1] = deadline; leases[#leases + 1] = id
      tasks[#tasks + 1] = id; tasks[#tasks + 1] = t[2] or ''; tasks[#tasks + 1] = t[3] or ''
      tasks[#tasks + 1] = attempt
      claimed = claimed + 1
    end
  end
end
bulk('ZADD', leases_key, leases)
return {now, tasks, claimed}
`)

// Claim takes up to n tasks from the queue for owner (a dispatcher identity), marks them
// RUNNING with attempt+1 and a lease of LeaseTTL, and returns them with everything an
// executor needs (module hash, name, limits, input). It returns an empty slice, not an
// error, when the queue is empty. One shard costs two round trips (the claim script, then
// the functions of what it took); with several, Claim starts at the next shard in round
// robin and goes on to the others until it has n tasks or every shard answered short.
//
// A task whose function was deleted becomes FAILED (kind internal) instead of being
// returned.
func (s *Store) Claim(ctx context.Context, owner string, n int) ([]task.Task, error) {
	if n <= 0 {
		return []task.Task{}, nil
	}
	out := make([]task.Task, 0, n)
	start := int(s.next.Add(1) % uint64(s.cfg.Shards))
	for i := 0; i < s.cfg.Shards && len(out) < n; i++ {
		sh := (start + i) % s.cfg.Shards
		for len(out) < n {
			got, full, err := s.claimShard(ctx, sh, owner, n-len(out))
			if err != nil {
				if len(out) > 0 {
					return out, nil // what is claimed is leased: hand it out, the error recurs
				}
				return nil, err
			}
			out = append(out, got...)
			if !full {
				break
			}
		}
	}
	return out, nil
}

// claimShard claims up to want tasks of shard sh; full is whether the shard gave as many as
// asked (it may hold more).
func (s *Store) claimShard(ctx context.Context, sh int, owner string, want int) (ts []task.Task, full bool, err error) {
	k := s.k.shard(sh)
	a := claimArgs{owner: owner, max: want, leaseTTL: s.cfg.LeaseTTL}
	res, err := s.eval(ctx, scriptClaim, a.call(k)).Slice()
	if err != nil {
		return nil, false, redisErr("claim", err)
	}
	if len(res) < 3 {
		return nil, false, fmt.Errorf("store: claim: unexpected reply %v", res)
	}
	flat, _ := res[1].([]any)
	full = int(num(res[2])) >= want
	if len(flat) == 0 {
		return nil, full, nil
	}
	claimed := make([]task.Task, 0, len(flat)/4)
	fids := make(map[string]*Function)
	for i := 0; i+3 < len(flat); i += 4 {
		fid := str(flat[i+1])
		fids[fid] = nil
		claimed = append(claimed, task.Task{ID: str(flat[i]), FunctionID: fid,
			Input: []byte(str(flat[i+2])), Attempt: int(num(flat[i+3]))})
	}
	if err := s.claimFunctions(ctx, fids); err != nil {
		// The tasks are leased: give them back unstarted rather than strand them.
		refs := make([]task.Ref, len(claimed))
		for i, t := range claimed {
			refs[i] = t.Ref()
		}
		if rerr := s.Release(ctx, refs); rerr != nil {
			return nil, false, fmt.Errorf("%w (and releasing the claimed tasks: %v)", err, rerr)
		}
		return nil, false, err
	}
	ts = make([]task.Task, 0, len(claimed))
	var gone []task.Ref
	var goneFn []string
	for _, t := range claimed {
		f := fids[t.FunctionID]
		if f == nil {
			gone = append(gone, t.Ref())
			goneFn = append(goneFn, t.FunctionID)
			continue
		}
		t.Name, t.ModuleHash, t.Limits = f.Name, f.ModuleHash, f.Limits
		ts = append(ts, t)
	}
	if len(gone) > 0 {
		if err := s.failGone(ctx, k, gone, goneFn); err != nil {
			return ts, full, nil // their leases run out and recovery retries them
		}
	}
	return ts, full, nil
}

// claimFunctions fills fids (function id → nil) with the functions that exist, read in one
// pipeline. They are read on every claim, cached or not, so that a function deleted since
// fails its tasks (the read is of three short fields).
func (s *Store) claimFunctions(ctx context.Context, fids map[string]*Function) error {
	ids := make([]string, 0, len(fids))
	cmds := make([]*redis.SliceCmd, 0, len(fids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for fid := range fids {
			ids = append(ids, fid)
			cmds = append(cmds, p.HMGet(ctx, s.k.function(fid), ffName, ffModule, ffLimits))
		}
		return nil
	})
	if err != nil {
		return redisErr("claim: functions", err)
	}
	for i, c := range cmds {
		v := c.Val()
		if len(v) != 3 || v[0] == nil || v[1] == nil {
			continue
		}
		f := Function{ID: ids[i], Name: str(v[0]), ModuleHash: str(v[1])}
		if cached, ok := s.fns.Load(f.ID); ok {
			f.Limits = cached.(Function).Limits
		} else if lim, err := parseLimits(str(v[2])); err == nil {
			f.Limits = lim
		} else {
			f.Limits = task.DefaultLimits() // never lose a claimed task over a bad record
		}
		fids[f.ID] = &f
	}
	return nil
}

// goneArgs are the KEYS and ARGV of scriptGone.
type goneArgs struct {
	taskTTL time.Duration
	refs    []task.Ref
	fids    []string
}

func (a goneArgs) call(k keys) call {
	argv := make([]any, 0, 4+3*len(a.refs))
	argv = append(argv, k.taskPrefix(), a.taskTTL.Milliseconds(), k.doneChannel(), string(task.KindInternal))
	for i, r := range a.refs {
		argv = append(argv, r.ID, r.Attempt, a.fids[i])
	}
	return call{keys: []string{k.leases()}, argv: argv}
}

// scriptGone fails claimed tasks whose function was deleted before they ran.
//
//	KEYS[1]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  TaskTTL (ms)
//	ARGV[3]  done channel
//	ARGV[4]  failure kind (internal)
//	ARGV[5..] id, attempt, function id, ...
//
// Only tasks RUNNING at that attempt change. Returns how many failed.
var scriptGone = redis.NewScript(luaPrelude + luaQueues + luaFinish + `
local leases = KEYS[1]
local task_prefix, task_ttl, done_channel, kind = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local done = {}
for i = 5, #ARGV, 3 do
  local key = task_prefix .. ARGV[i]
  local t = redis.call('HMGET', key, 'status', 'attempts')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(ARGV[i + 1]) then
    finish(key, 'FAILED', task_ttl, {'err_kind', kind, 'err_msg',
      'function ' .. ARGV[i + 2] .. ' was deleted before the task ran'})
    redis.call('ZREM', leases, ARGV[i])
    done[#done + 1] = ARGV[i]
  end
end
publish(done_channel, done)
return #done
`)

func (s *Store) failGone(ctx context.Context, k keys, refs []task.Ref, fids []string) error {
	a := goneArgs{taskTTL: s.cfg.TaskTTL, refs: refs, fids: fids}
	return redisErr("claim: fail tasks of deleted functions", s.eval(ctx, scriptGone, a.call(k)).Err())
}
