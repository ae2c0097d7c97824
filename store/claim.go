package store

import (
	"context"
	"fmt"
	"time"

	"faas/task"
)

// A task's run: Claim takes it from the queue under a lease, Complete records its outcome.
// Lease upkeep and recovery are in leases.go.

// Claiming declares the task hashes it touches, though it only learns the ids by popping
// them. scriptTake pops ids (the requeued first, then the namespaces' queues in fair
// share) and leases them; the ones whose hashes it was given (hints: the ids that were at
// the consumer ends of the queues when the previous claim ran, which it returns) it also
// marks RUNNING; scriptStart, with their hashes declared, marks the others. A dispatcher
// alone on a shard nearly always gets the hints right: one round trip per claim. Between
// the two scripts an id is leased while its task is still QUEUED; if the claimer dies
// there, lease recovery puts it back (uncharged).

// takeArgs are the KEYS and ARGV of scriptTake.
type takeArgs struct {
	max      int
	owner    string
	leaseTTL time.Duration
	ring     []string // the namespaces believed on the ring (their queues are declared)
	hints    []string // ids expected at the consumer ends (their hashes are declared)
}

func (a takeArgs) call(k keys) call {
	ks := append(k.shardKeys(3+len(a.ring)+len(a.hints)), k.nsWeights(), k.nsCredit(), k.queue())
	argv := make([]any, 0, 4+len(a.ring)+len(a.hints))
	argv = append(argv, a.max, a.leaseTTL.Milliseconds(), len(a.ring), a.owner)
	for _, ns := range a.ring {
		ks = append(ks, k.queueOf(ns))
		argv = append(argv, ns)
	}
	for _, id := range a.hints {
		argv = append(argv, id)
	}
	return call{keys: k.taskKeys(ks, a.hints...), argv: argv}
}

// scriptTake pops up to max task ids of one shard and leases them, starting those whose
// task hashes are declared.
//
// Fair share: the namespaces with queued tasks form a ring (luaShard); each turn pops, FIFO,
// from the namespace at the ring's head its turn's worth and moves it to the tail. A turn
// is w*k tasks: w the namespace's weight (SetWeights; 1 by default) and k what the claim
// wants divided by the weights of the ring, at least 1 (set again when a namespace drains).
// So a claim of 32 with weights 3 and 1 takes 24 and 8, and with all weights 1 it splits
// evenly as before. A turn a claim
// ends before it is over keeps the namespace at the head, with what it took in the credit
// hash, and the next claim goes on with it: one task at a time, a namespace of weight 3
// still gets 3 in a row. A namespace found drained leaves the ring. The ring lives in Redis,
// so the rotation is shared by every dispatcher and every claim, whatever its size: one
// namespace's backlog delays another's task by one turn, not by the backlog. Handed-back
// tasks (the requeue list) go before any turn.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6]     the namespaces' weights (hash: namespace → weight above 1)
//	KEYS[7]     the credit of the namespace at the ring's head (hash: namespace → taken)
//	KEYS[8]     the default namespace's queue
//	KEYS[9..]   the queues of the nq namespaces named in ARGV, in that order, then the task
//	            hashes of the hinted ids, in that order
//	ARGV[1]  max (tasks)
//	ARGV[2]  LeaseTTL (ms)
//	ARGV[3]  nq
//	ARGV[4]  owner
//	ARGV[5..] nq namespaces, then the hinted ids
//
// A popped id that is hinted is started as scriptStart would (or dropped, without a lease,
// if not QUEUED); the others are leased and returned for scriptStart. Returns
// {now, {id, function_id, input, attempt, ...} started, {ids} to start, {ids} popped (in
// claim order), 0, hints},
// or, before any write when the ring holds a namespace whose queue is not declared,
// {now, {}, {}, {}, ring, {}}: the caller declares the ring's namespaces and calls again.
var scriptTake = newScript(luaPrelude + luaShard + `
local max, lease_ttl, nq, owner = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local weights_key, credit_key = KEYS[6], KEYS[7]
local queues = {default = KEYS[8]}
for i = 1, nq do queues[ARGV[4 + i]] = KEYS[8 + i] end
local hinted = {}
for i = 5 + nq, #ARGV do hinted[ARGV[i]] = KEYS[i + 4] end
local ring = redis.call('LRANGE', ring_key, 0, -1)
local on_ring = {}
for _, ns in ipairs(ring) do
  if not queues[ns] then return {now, {}, {}, {}, ring, {}} end
  on_ring[ns] = true
end
local deadline = n(now_n + lease_ttl)
local ids = redis.call('RPOP', requeue_key, max) or {}
-- Tasks queued before namespaces existed (or by an older faas) are on the default queue
-- without a ring entry.
if #ids < max and redis.call('LLEN', queues.default) > 0 then
  announce_ns('default')
  if not on_ring.default then ring[#ring + 1] = 'default' end
end
-- The weights of the namespaces on the ring, and their sum.
local weight, wsum = {}, 0
if #ids < max then
  for i = 1, #ring, 500 do -- unpack has a limit
    local last = math.min(i + 499, #ring)
    local ws = redis.call('HMGET', weights_key, unpack(ring, i, last))
    for j = i, last do
      local ns, w = ring[j], math.max(1, math.floor(tonumber(ws[j - i + 1]) or 1))
      if not weight[ns] then wsum = wsum + w end
      weight[ns] = w
    end
  end
end
-- k: how many weights' worth a turn is in this claim, set again when a namespace drains.
local k = math.max(1, math.floor((max - #ids) / math.max(wsum, 1)))
while #ids < max do
  local ns = redis.call('LINDEX', ring_key, 0)
  if not ns then break end
  local w = weight[ns] or 1
  local left = max - #ids
  local turn = w * k
  local used = tonumber(redis.call('HGET', credit_key, ns)) or 0
  local take = math.max(1, math.min(turn - used, left))
  -- RPOP with a count (Redis 6.2+) takes the turn in one call.
  local popped = redis.call('RPOP', queues[ns], take) or {}
  for _, id in ipairs(popped) do ids[#ids + 1] = id end
  if #popped < take then -- drained: off the ring
    redis.call('LPOP', ring_key)
    redis.call('SREM', nsq_key, ns)
    redis.call('HDEL', credit_key, ns)
    wsum = wsum - w
    k = math.max(1, math.floor((max - #ids) / math.max(wsum, 1)))
  elseif used + #popped >= turn then -- its turn is over
    redis.call('LMOVE', ring_key, ring_key, 'LEFT', 'RIGHT')
    redis.call('HDEL', credit_key, ns)
  else -- the claim is full mid-turn: the next one goes on with it
    redis.call('HSET', credit_key, ns, used + #popped)
  end
end
local tasks, taken, leases = {}, {}, {}
for _, id in ipairs(ids) do
  local key = hinted[id]
  if key then
    local t = redis.call('HMGET', key, 'status', 'function_id', 'input', 'attempts')
    if t[1] == 'QUEUED' then
      local attempt = (tonumber(t[4]) or 0) + 1
      redis.call('HSET', key, 'status', 'RUNNING', 'attempts', n(attempt), 'owner', owner, 'started', now)
      leases[#leases + 1] = deadline; leases[#leases + 1] = id
      tasks[#tasks + 1] = id; tasks[#tasks + 1] = t[2] or ''; tasks[#tasks + 1] = t[3] or ''
      tasks[#tasks + 1] = attempt
    end
  else
    leases[#leases + 1] = deadline; leases[#leases + 1] = id
    taken[#taken + 1] = id
  end
end
bulk('ZADD', leases_key, leases)
-- Hints for the next claim: the ids now at the consumer ends, in the order they go.
local hints, hinted_queue = {}, {}
local function hint(key)
  if #hints >= max or hinted_queue[key] then return end
  hinted_queue[key] = true
  local next_ids = redis.call('LRANGE', key, -(max - #hints), -1)
  for i = #next_ids, 1, -1 do hints[#hints + 1] = next_ids[i] end
end
hint(requeue_key)
for _, ns in ipairs(redis.call('LRANGE', ring_key, 0, -1)) do hint(queues[ns] or queues.default) end
hint(queues.default)
return {now, tasks, taken, ids, 0, hints}
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
// error, when the queue is empty. A shard costs one round trip when its hints hold and the
// tasks run the previous claim's functions (read in the take script's pipeline), one more
// for each that does not; with several shards, Claim starts at the next one in round robin
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

// take runs scriptTake on shard sh, declaring the ring's namespaces as last seen there (and
// once more if the ring holds others) and the hinted ids of the previous claim. It returns
// the reply's started tasks (flat), the ids left to start, the ids popped (in claim order),
// and the functions read on speculation.
func (s *Store) take(ctx context.Context, k keys, sh int, owner string, want int) (flat []any, taken, popped []string, known map[string][]any, err error) {
	var ring, hints []string
	if v, ok := s.rings.Load(sh); ok {
		ring = v.([]string)
	}
	if v, ok := s.hints.Load(sh); ok {
		hints = v.([]string)
	}
	for try := 0; ; try++ {
		a := takeArgs{max: want, owner: owner, leaseTTL: s.cfg.LeaseTTL, ring: ring, hints: hints}
		res, fns, err := s.evalGuessing(ctx, scriptTake, a.call(k))
		if err != nil {
			return nil, nil, nil, nil, redisErr("claim", err)
		}
		if len(res) != 6 {
			return nil, nil, nil, nil, fmt.Errorf("store: claim: unexpected reply %v", res)
		}
		if now, ok := res[4].([]any); ok && try < 3 {
			ring = ring[:0:0]
			for _, ns := range now {
				if ns := str(ns); ns != DefaultNamespace {
					ring = append(ring, ns)
				}
			}
			s.rings.Store(sh, ring)
			continue
		}
		next, _ := res[5].([]any)
		hints = make([]string, len(next))
		for i, id := range next {
			hints[i] = str(id)
		}
		s.hints.Store(sh, hints)
		flat, _ = res[1].([]any)
		return flat, strs(res[2]), strs(res[3]), fns, nil
	}
}

// claimFinishWithin bounds the steps of a claim after its take script (see claimShard).
const claimFinishWithin = 5 * time.Second

// claimShard claims up to want tasks of shard sh; full is whether the shard gave as many as
// asked (it may hold more).
func (s *Store) claimShard(ctx context.Context, sh int, owner string, want int) (ts []task.Task, full bool, err error) {
	k := s.k.shard(sh)
	flat, taken, popped, known, err := s.take(ctx, k, sh, owner, want)
	if err != nil {
		return nil, false, err
	}
	// Tasks are leased from here on: finish the claim even if the caller gives up meanwhile
	// (a dispatcher stopping), so that it gets them and hands them back, rather than leaving
	// them RUNNING for nobody until their leases run out.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimFinishWithin)
	defer cancel()
	full = len(popped) >= want
	if len(taken) > 0 {
		// The hints missed these (another claimer moved the queue): start them now.
		res, more, err := s.evalGuessing(ctx, scriptStart, startArgs{owner: owner, leaseTTL: s.cfg.LeaseTTL, ids: taken}.call(k))
		if err != nil {
			// Those ids are leased while QUEUED: lease recovery puts them back. The ones
			// started by the take script are handed out.
			if len(flat) == 0 {
				return nil, false, redisErr("claim", err)
			}
		} else if len(res) >= 2 {
			started, _ := res[1].([]any)
			flat = append(flat, started...)
			if known == nil {
				known = more
			}
		}
	}
	if len(flat) == 0 {
		return nil, full, nil
	}
	// In claim order: the take script's and the start script's, by the order popped.
	byID := make(map[string]task.Task, len(flat)/4)
	fids := make(map[string]*Function)
	for i := 0; i+3 < len(flat); i += 4 {
		fid := str(flat[i+1])
		fids[fid] = nil
		byID[str(flat[i])] = task.Task{ID: str(flat[i]), FunctionID: fid,
			Input: []byte(str(flat[i+2])), Attempt: int(num(flat[i+3]))}
	}
	claimed := make([]task.Task, 0, len(byID))
	for _, id := range popped {
		if t, ok := byID[id]; ok {
			claimed = append(claimed, t)
			delete(byID, id) // a duplicate id in the queue is claimed once
		}
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

// strs is a reply's list of strings.
func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = str(x)
	}
	return out
}
