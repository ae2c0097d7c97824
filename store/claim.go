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

// Claiming is two scripts per shard, because the ids it takes are only known once popped
// and every key a script touches must be declared: scriptTake pops ids (the requeued first,
// then the namespaces' queues in fair share) and leases them; scriptStart, with their task
// hashes declared, marks each RUNNING. Between the two an id is leased while its task is
// still QUEUED; if the claimer dies there, lease recovery puts it back (uncharged).

// takeArgs are the KEYS and ARGV of scriptTake.
type takeArgs struct {
	max      int
	leaseTTL time.Duration
	ring     []string // the namespaces believed on the ring (their queues are declared)
}

func (a takeArgs) call(k keys) call {
	ks := append(k.shardKeys(1+len(a.ring)), k.queue())
	argv := make([]any, 0, 2+len(a.ring))
	argv = append(argv, a.max, a.leaseTTL.Milliseconds())
	for _, ns := range a.ring {
		ks = append(ks, k.queueOf(ns))
		argv = append(argv, ns)
	}
	return call{keys: ks, argv: argv}
}

// scriptTake pops up to max task ids of one shard and leases them.
//
// Fair share: the namespaces with queued tasks form a ring (luaShard); each turn takes the
// ring's head, moves it to the tail and pops that namespace's share of what is still wanted
// (at least one task), FIFO within the namespace. A namespace found drained leaves the ring.
// The ring lives in Redis, so the rotation is shared by every dispatcher and every claim,
// whatever its size: one namespace's backlog delays another's task by one turn, not by the
// backlog. Handed-back tasks (the requeue list) go before any turn.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6]     the default namespace's queue
//	KEYS[7..]   the queues of the namespaces named in ARGV[3..], in that order
//	ARGV[1]  max (tasks)
//	ARGV[2]  LeaseTTL (ms)
//	ARGV[3..] namespaces
//
// Returns {ids, 0} with the ids popped, or, before any write when the ring holds a
// namespace whose queue is not declared, {{}, ring}: the caller declares the ring's
// namespaces and calls again.
var scriptTake = newScript(luaPrelude + luaShard + `
local max, lease_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local queues = {default = KEYS[6]}
for i = 3, #ARGV do queues[ARGV[i]] = KEYS[i + 4] end
local ring = redis.call('LRANGE', ring_key, 0, -1)
for _, ns in ipairs(ring) do
  if not queues[ns] then return {{}, ring} end
end
local deadline = n(now_n + lease_ttl)
local ids = redis.call('RPOP', requeue_key, max) or {}
-- Tasks queued before namespaces existed (or by an older faas) are on the default queue
-- without a ring entry.
if #ids < max and redis.call('LLEN', queues.default) > 0 then announce_ns('default') end
while #ids < max do
  local turns = redis.call('LLEN', ring_key)
  if turns == 0 then break end
  local ns = redis.call('LMOVE', ring_key, ring_key, 'LEFT', 'RIGHT')
  local share = math.max(1, math.floor((max - #ids) / turns))
  -- RPOP with a count (Redis 6.2+) takes the share in one call.
  local popped = redis.call('RPOP', queues[ns], share) or {}
  if #popped < share then
    redis.call('LREM', ring_key, -1, ns)
    redis.call('SREM', nsq_key, ns)
  end
  for _, id in ipairs(popped) do ids[#ids + 1] = id end
end
local leases = {}
for _, id in ipairs(ids) do leases[#leases + 1] = deadline; leases[#leases + 1] = id end
bulk('ZADD', leases_key, leases)
return {ids, 0}
`)

// startArgs are the KEYS and ARGV of scriptStart.
type startArgs struct {
	owner    string
	leaseTTL time.Duration
	ids      []string
}

func (a startArgs) call(k keys) call {
	argv := make([]any, 0, 2+len(a.ids))
	argv = append(argv, a.owner, a.leaseTTL.Milliseconds())
	for _, id := range a.ids {
		argv = append(argv, id)
	}
	return call{keys: k.taskKeys(k.shardKeys(len(a.ids)), a.ids...), argv: argv}
}

// scriptStart marks taken tasks RUNNING for owner, with a fresh lease.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6..]   the task hashes, one per id
//	ARGV[1]  owner
//	ARGV[2]  LeaseTTL (ms)
//	ARGV[3..] ids
//
// An id whose record is not QUEUED is dropped: its lease too unless the task is RUNNING
// (then the lease is its runner's); one whose lease is gone (recovery took it back: this call came a LeaseTTL late)
// is left alone. Returns {now, {id, function_id, input, attempt, ...}}.
var scriptStart = newScript(luaPrelude + luaShard + `
local owner, lease_ttl = ARGV[1], tonumber(ARGV[2])
local deadline = n(now_n + lease_ttl)
local tasks = {}
for i = 3, #ARGV do
  local id, key = ARGV[i], KEYS[i + 3]
  local t = redis.call('HMGET', key, 'status', 'function_id', 'input', 'attempts')
  if t[1] ~= 'QUEUED' then
    -- A RUNNING task's lease is its runner's (a duplicate id, or this very call retried
    -- after a lost reply): leave it. Any other's (gone, finished) goes.
    if t[1] ~= 'RUNNING' then redis.call('ZREM', leases_key, id) end
  elseif redis.call('ZADD', leases_key, 'XX', 'CH', deadline, id) == 1 or redis.call('ZSCORE', leases_key, id) then
    local attempt = (tonumber(t[4]) or 0) + 1
    redis.call('HSET', key, 'status', 'RUNNING', 'attempts', n(attempt), 'owner', owner, 'started', now)
    tasks[#tasks + 1] = id; tasks[#tasks + 1] = t[2] or ''; tasks[#tasks + 1] = t[3] or ''
    tasks[#tasks + 1] = attempt
  end
end
return {now, tasks}
`)

// Claim takes up to n tasks from the queue for owner (a dispatcher identity), marks them
// RUNNING with attempt+1 and a lease of LeaseTTL, and returns them with everything an
// executor needs (module hash, name, limits, input). It returns an empty slice, not an
// error, when the queue is empty. A shard costs two round trips (take; start, with the
// functions of the previous claim read in the same pipeline) and a third when the tasks
// run other functions; with several shards, Claim starts at the next one in round robin
// and goes on to the others until it has n tasks or every shard answered short.
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
		// Popped ids that yield no task (stale ids, tasks of deleted functions, which fail
		// here) count against a budget: one claim never walks a whole backlog of them; the
		// next claim carries on.
		for budget := 4*n + 100; budget > 0 && len(out) < n; {
			want := n - len(out)
			got, full, err := s.claimShard(ctx, sh, owner, want)
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
			budget -= want
		}
	}
	return out, nil
}

// take runs scriptTake on shard sh, declaring the ring's namespaces as last seen there and
// once more if the ring holds others.
func (s *Store) take(ctx context.Context, k keys, sh, want int) ([]string, error) {
	var ring []string
	if v, ok := s.rings.Load(sh); ok {
		ring = v.([]string)
	}
	for try := 0; ; try++ {
		res, err := s.eval(ctx, scriptTake, takeArgs{max: want, leaseTTL: s.cfg.LeaseTTL, ring: ring}.call(k)).Slice()
		if err != nil {
			return nil, redisErr("claim", err)
		}
		if len(res) != 2 {
			return nil, fmt.Errorf("store: claim: unexpected reply %v", res)
		}
		if now, ok := res[1].([]any); ok && try < 3 {
			ring = ring[:0:0]
			for _, ns := range now {
				if ns := str(ns); ns != DefaultNamespace {
					ring = append(ring, ns)
				}
			}
			s.rings.Store(sh, ring)
			continue
		}
		ids, _ := res[0].([]any)
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = str(id)
		}
		return out, nil
	}
}

// claimShard claims up to want tasks of shard sh; full is whether the shard gave as many as
// asked (it may hold more).
func (s *Store) claimShard(ctx context.Context, sh int, owner string, want int) (ts []task.Task, full bool, err error) {
	k := s.k.shard(sh)
	ids, err := s.take(ctx, k, sh, want)
	if err != nil || len(ids) == 0 {
		return nil, false, err
	}
	full = len(ids) >= want
	res, known, err := s.start(ctx, k, owner, ids)
	if err != nil {
		// The ids are leased while QUEUED: lease recovery puts them back.
		return nil, false, redisErr("claim", err)
	}
	if len(res) < 2 {
		return nil, false, fmt.Errorf("store: claim: unexpected reply %v", res)
	}
	flat, _ := res[1].([]any)
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
	var recent []string
	for fid := range fids {
		if v, ok := known[fid]; ok {
			fids[fid] = s.claimedFunction(fid, v)
		}
		recent = append(recent, fid)
	}
	if len(recent) <= maxRecentFns {
		s.recentFns.Store(&recent)
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

// maxRecentFns bounds the functions a claim reads on speculation (see start).
const maxRecentFns = 8

// start runs scriptStart on ids and, in the same pipeline (one round trip), reads the
// functions of the previous claim: most claims run the functions the last one ran, so a
// claim is then two round trips, not three. It returns the script's reply and, by function
// id, what was read (HMGET name, module, limits).
func (s *Store) start(ctx context.Context, k keys, owner string, ids []string) ([]any, map[string][]any, error) {
	c := startArgs{owner: owner, leaseTTL: s.cfg.LeaseTTL, ids: ids}.call(k)
	var guess []string
	if p := s.recentFns.Load(); p != nil {
		guess = *p
	}
	if len(guess) == 0 {
		res, err := s.eval(ctx, scriptStart, c).Slice()
		return res, nil, err
	}
	var started *redis.Cmd
	fns := make([]*redis.SliceCmd, len(guess))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		started = scriptStart.rs.EvalSha(ctx, p, c.keys, c.argv...)
		for i, fid := range guess {
			fns[i] = p.HMGet(ctx, s.k.function(fid), ffName, ffModule, ffLimits)
		}
		return nil
	})
	res, err := started.Slice()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Not loaded yet (a restarted Redis): nothing ran; load it and run it alone.
		res, err = s.eval(ctx, scriptStart, c).Slice()
		return res, nil, err
	}
	if err != nil {
		return nil, nil, err
	}
	known := make(map[string][]any, len(guess))
	for i, fid := range guess {
		if fns[i].Err() == nil {
			known[fid] = fns[i].Val()
		}
	}
	return res, known, nil
}

// claimFunctions fills fids (function id → nil) with the functions that exist, read in one
// pipeline, for those start did not read already. They are read on every claim, cached or
// not, so that a function deleted since fails its tasks (the read is of three short
// fields).
func (s *Store) claimFunctions(ctx context.Context, fids map[string]*Function) error {
	ids := make([]string, 0, len(fids))
	cmds := make([]*redis.SliceCmd, 0, len(fids))
	for fid, f := range fids {
		if f == nil {
			ids = append(ids, fid)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, fid := range ids {
			cmds = append(cmds, p.HMGet(ctx, s.k.function(fid), ffName, ffModule, ffLimits))
		}
		return nil
	})
	if err != nil {
		return redisErr("claim: functions", err)
	}
	for i, c := range cmds {
		fids[ids[i]] = s.claimedFunction(ids[i], c.Val())
	}
	return nil
}

// claimedFunction is the function fid from its HMGET name, module, limits; nil if it is
// gone.
func (s *Store) claimedFunction(fid string, v []any) *Function {
	if len(v) != 3 || v[0] == nil || v[1] == nil {
		return nil
	}
	f := Function{ID: fid, Name: str(v[0]), ModuleHash: str(v[1])}
	if cached, ok := s.fns.Load(f.ID); ok {
		f.Limits = cached.(Function).Limits
	} else if lim, err := parseLimits(str(v[2])); err == nil {
		f.Limits = lim
	} else {
		f.Limits = task.DefaultLimits() // never lose a claimed task over a bad record
	}
	return &f
}

// goneArgs are the KEYS and ARGV of scriptGone.
type goneArgs struct {
	taskTTL time.Duration
	refs    []task.Ref
	fids    []string
}

func (a goneArgs) call(k keys) call {
	argv := make([]any, 0, 3+3*len(a.refs))
	argv = append(argv, a.taskTTL.Milliseconds(), k.doneChannel(), string(task.KindInternal))
	ks := k.shardKeys(len(a.refs))
	for i, r := range a.refs {
		ks = k.taskKeys(ks, r.ID)
		argv = append(argv, r.ID, r.Attempt, a.fids[i])
	}
	return call{keys: ks, argv: argv}
}

// scriptGone fails claimed tasks whose function was deleted before they ran.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6..]   the task hashes
//	ARGV[1]  TaskTTL (ms)
//	ARGV[2]  done channel
//	ARGV[3]  failure kind (internal)
//	ARGV[4..] id, attempt, function id, ... (one triple per task hash)
//
// Only tasks RUNNING at that attempt change. Returns how many failed.
var scriptGone = newScript(luaPrelude + luaShard + luaFinish + `
local task_ttl, done_channel, kind = ARGV[1], ARGV[2], ARGV[3]
local done = {}
for j = 6, #KEYS do
  local key, i = KEYS[j], 4 + 3 * (j - 6)
  local t = redis.call('HMGET', key, 'status', 'attempts')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(ARGV[i + 1]) then
    finish(key, 'FAILED', task_ttl, {'err_kind', kind, 'err_msg',
      'function ' .. ARGV[i + 2] .. ' was deleted before the task ran'})
    redis.call('ZREM', leases_key, ARGV[i])
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
