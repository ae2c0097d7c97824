package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Tasks: submitting them (record + queue + wake-up) and reading their records.

// submitArgs are the KEYS and ARGV of scriptSubmit.
type submitArgs struct {
	functionID string
	ns         string
	maxActive  int64
	ids        []string
	inputs     [][]byte
}

func (a submitArgs) call(k keys) call {
	ns := nsField(a.ns)
	argv := make([]any, 0, 4+2*len(a.ids))
	argv = append(argv, a.functionID, k.tasksChannel(), ns, a.maxActive)
	for i, id := range a.ids {
		in := a.inputs[i]
		if in == nil {
			in = []byte{}
		}
		argv = append(argv, id, in)
	}
	ks := k.taskKeys(append(k.shardKeys(2+len(a.ids)), k.queueOf(ns)), a.ids...)
	if len(k.shards) == 1 {
		// One shard shares the functions' slot: the script checks the function itself.
		ks = append(ks, k.function(a.functionID))
	}
	return call{keys: ks, argv: argv}
}

// scriptSubmit creates QUEUED tasks and queues them.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6]     the queue of the namespace
//	KEYS[7..]   the task hashes, one per id, then (with one shard only) the function: with
//	            more shards it is another slot's, and SubmitLimited checks it before
//	ARGV[1]  function id
//	ARGV[2]  tasks channel
//	ARGV[3]  namespace ("" for the default: no field written)
//	ARGV[4]  most unfinished (queued + running) tasks of the namespace in this shard
//	         (negative: no bound)
//	ARGV[5..] id, input, id, input, ...
//
// An id whose record exists already is skipped (a retried call queues nothing twice). The
// ids go on the namespace's queue, and the namespace on the ring if it was not there.
// Publishes the new ids once on the tasks channel. Returns the creation time (ms, as
// text), -1 when the bound refuses the whole call, -2 when the function no longer exists
// (nothing written in either case).
//
// Redis does not undo the writes of a script that fails half-way, so everything that can
// fail (the queue's type, building the announcement) is done before the first write: an
// error means nothing was written.
var scriptSubmit = newScript(luaPrelude + luaShard + `
local queue = KEYS[6]
local fid, tasks_channel, ns, max_active = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local count = (#ARGV - 4) / 2
-- A function deleted since the caller read it (another server's cache) takes no new tasks.
local fn_key = KEYS[7 + count]
if fn_key and redis.call('EXISTS', fn_key) == 0 then return '-2' end
local qt = redis.call('TYPE', queue)
if type(qt) == 'table' then qt = qt.ok end
if qt ~= 'none' and qt ~= 'list' then
  return redis.error_reply('WRONGTYPE the queue key holds a ' .. tostring(qt) .. ', not a list')
end
if max_active >= 0 then
  local active = tonumber(redis.call('HGET', active_key, ns_field(ns))) or 0
  if active + count > max_active then return '-1' end
end
local fresh = {}
for j = 1, count do
  if redis.call('EXISTS', KEYS[6 + j]) == 0 then fresh[#fresh + 1] = j end
end
local new = {}
for i, j in ipairs(fresh) do new[i] = ARGV[3 + 2 * j] end
local announce = joined(new)
for _, j in ipairs(fresh) do
  local key, input = KEYS[6 + j], ARGV[4 + 2 * j]
  if ns == '' then
    redis.call('HSET', key, 'status', 'QUEUED', 'function_id', fid, 'input', input,
      'attempts', '0', 'created', now)
  else
    redis.call('HSET', key, 'status', 'QUEUED', 'function_id', fid, 'input', input,
      'attempts', '0', 'created', now, 'ns', ns)
  end
end
bulk('LPUSH', queue, new)
if #new > 0 then
  announce_ns(ns)
  redis.call('HINCRBY', active_key, ns_field(ns), #new)
  redis.call('PUBLISH', tasks_channel, announce)
end
return now
`)

// withdrawArgs are the KEYS and ARGV of scriptWithdraw.
type withdrawArgs struct {
	functionID string
	ns         string
	ids        []string
}

func (a withdrawArgs) call(k keys) call {
	ns := nsField(a.ns)
	return call{keys: k.taskKeys(k.shardKeys(len(a.ids)), a.ids...), argv: []any{a.functionID, ns}}
}

// scriptWithdraw deletes the records of tasks of a failed submission that are still QUEUED,
// and takes them off their namespace's count of unfinished tasks.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6..]   the task hashes
//	ARGV[1]  function id
//	ARGV[2]  namespace ("" for the default)
//
// Their queue entries stay: Claim drops popped ids without a QUEUED record. Returns how many
// of the ids exist and could not be withdrawn (a dispatcher claimed them already).
var scriptWithdraw = newScript(luaShard + `
local fid, ns = ARGV[1], ARGV[2]
local kept, gone = 0, 0
for i = 6, #KEYS do
  local key = KEYS[i]
  local t = redis.call('HMGET', key, 'status', 'function_id')
  if t[1] == 'QUEUED' and t[2] == fid then
    redis.call('DEL', key)
    gone = gone + 1
  elseif t[1] then
    kept = kept + 1
  end
end
if gone > 0 then
  if redis.call('HINCRBY', active_key, ns_field(ns), -gone) < 0 then redis.call('HSET', active_key, ns_field(ns), 0) end
end
return kept
`)

// Submit creates one QUEUED task per input for function fn, appends them to the durable
// queue of fn's namespace in order and publishes one wake-up on "faas:tasks", in one round trip
// (a script). It returns the new task ids, in input order.
//
// An error means no task of the call is left queued: the script writes nothing when it
// fails, and when the outcome is unknown (a reply lost on the network, a timeout) the
// tasks it may have created are withdrawn (their records deleted) before Submit returns.
// Only if Redis is unreachable for the withdrawal too, or a dispatcher claimed a task in
// between, can one survive; the error then says so.
func (s *Store) Submit(ctx context.Context, fn Function, inputs [][]byte) ([]string, error) {
	return s.SubmitLimited(ctx, fn, inputs, 0)
}

// Submit and SubmitLimited refuse, with an error wrapping ErrNotFound, a function that has
// been deleted.
//
// SubmitLimited is Submit refusing, with an error wrapping ErrQuota and nothing queued,
// inputs that would take fn's namespace over maxActive unfinished (queued plus running)
// tasks; 0 is no bound. Every input counts.
func (s *Store) SubmitLimited(ctx context.Context, fn Function, inputs [][]byte, maxActive int64) ([]string, error) {
	if fn.ID == "" {
		return nil, fmt.Errorf("store: submit: function id required")
	}
	if len(inputs) == 0 {
		return []string{}, nil
	}
	spans := s.spread(len(inputs))
	ids := make([]string, len(inputs))
	for _, sp := range spans {
		for i := sp.lo; i < sp.hi; i++ {
			ids[i] = s.newTaskID(sp.shard)
		}
	}
	bounds, err := s.submitBounds(ctx, fn, spans, maxActive)
	if err != nil {
		return nil, err
	}
	for j, sp := range spans {
		a := submitArgs{functionID: fn.ID, ns: fn.Namespace, maxActive: bounds[j],
			ids: ids[sp.lo:sp.hi], inputs: inputs[sp.lo:sp.hi]}
		res, err := s.evalDurable(ctx, "submit", scriptSubmit, a.call(s.k.shard(sp.shard))).Text()
		if err == nil && (res == "-1" || res == "-2") {
			// Another submission raced this one past the bound, or the function went: what
			// earlier shards queued of this call goes too.
			if werr := s.withdraw(ctx, fn, ids[:sp.lo]); werr != nil {
				err = fmt.Errorf("store: submit: refused on shard %d (and withdrawing its tasks: %w)", sp.shard, werr)
			}
		}
		if err != nil {
			err = redisErr("submit", err)
			if werr := s.withdraw(ctx, fn, ids[:sp.hi]); werr != nil {
				return nil, fmt.Errorf("%w (and withdrawing its tasks: %v)", err, werr)
			}
			return nil, err
		}
		if res == "-2" {
			return nil, fmt.Errorf("store: submit: function %s: %w", fn.ID, ErrNotFound)
		}
		if res == "-1" {
			return nil, fmt.Errorf("store: namespace %s: %d more tasks would exceed %d unfinished: %w",
				nsOrDefault(fn.Namespace), len(inputs), maxActive, ErrQuota)
		}
	}
	return ids, nil
}

// submitBounds returns, per span, the bound of unfinished tasks the span's shard may hold
// after it (negative: none). One shard: maxActive itself, checked inside the script. More:
// the function's existence and the namespace's count over every shard are read first (one
// pipeline), and each shard's script is given what the others leave, so that the bound
// holds unless two submissions of one namespace race (each may then pass on the counts it
// read: the bound is exact on one shard, approximate by the racing batches on several).
func (s *Store) submitBounds(ctx context.Context, fn Function, spans []span, maxActive int64) ([]int64, error) {
	bounds := make([]int64, len(spans))
	for j := range bounds {
		bounds[j] = -1
	}
	if s.cfg.Shards == 1 {
		if maxActive > 0 {
			bounds[0] = maxActive
		}
		return bounds, nil
	}
	var exists *redis.IntCmd
	active := make([]*redis.StringCmd, s.cfg.Shards)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, s.k.function(fn.ID))
		if maxActive > 0 {
			for i := range active {
				active[i] = p.HGet(ctx, s.k.shard(i).active(), nsOrDefault(fn.Namespace))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr("submit", err)
	}
	if exists.Val() == 0 {
		return nil, fmt.Errorf("store: submit: function %s: %w", fn.ID, ErrNotFound)
	}
	if maxActive <= 0 {
		return bounds, nil
	}
	var total int64
	counts := make([]int64, len(active))
	for i, c := range active {
		counts[i] = max(num(c.Val()), 0)
		total += counts[i]
	}
	n := int64(spans[len(spans)-1].hi)
	if total+n > maxActive {
		return nil, fmt.Errorf("store: namespace %s: %d more tasks would exceed %d unfinished: %w",
			nsOrDefault(fn.Namespace), n, maxActive, ErrQuota)
	}
	// Each shard may take its own count, its run, and the slack no shard has used.
	slack := maxActive - total - n
	for j, sp := range spans {
		bounds[j] = counts[sp.shard] + int64(sp.hi-sp.lo) + slack
	}
	return bounds, nil
}

// withdraw removes what a failed Submit may have created, under its own short deadline (the
// caller's context may be what ended the submission).
func (s *Store) withdraw(ctx context.Context, fn Function, ids []string) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	kept := 0
	for sh, group := range byShard(s.k, ids, strID) {
		n, err := s.eval(wctx, scriptWithdraw, withdrawArgs{functionID: fn.ID, ns: fn.Namespace, ids: group}.call(s.k.shard(sh))).Int()
		if err != nil {
			return redisErr("withdraw", err)
		}
		kept += n
	}
	if kept > 0 {
		return fmt.Errorf("store: withdraw: %d of %d tasks were claimed already and will run", kept, len(ids))
	}
	return nil
}

// recordFields are read by Task and Tasks, in this order (never the input).
var recordFields = []string{fStatus, fFunctionID, fResult, fErrKind, fErrMsg, fStderr,
	fAttempts, fWorker, fCreated, fStarted, fFinished, fDurationMs, fNamespace, fCPUUnits}

// Task returns a task's record (without its input). ErrNotFound if unknown or expired.
func (s *Store) Task(ctx context.Context, id string) (Record, error) {
	vals, err := s.rdb.HMGet(ctx, s.k.task(id), recordFields...).Result()
	if err != nil {
		return Record{}, redisErr("task", err)
	}
	r := parseRecord(id, vals)
	if r.Status == "" {
		return Record{}, fmt.Errorf("store: task %s: %w", id, ErrNotFound)
	}
	return r, nil
}

// TaskInput returns the input of task id if it is still kept: always while the task is
// unfinished, and once it is terminal only when it is at most InputKept bytes (see
// luaDropInput). ok is false when there is no input (none kept, or no such task).
func (s *Store) TaskInput(ctx context.Context, id string) (input []byte, ok bool, err error) {
	v, err := s.rdb.HGet(ctx, s.k.task(id), fInput).Bytes()
	if isNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, redisErr("task input", err)
	}
	return v, true, nil
}

// Tasks returns many records in one round trip; a missing one has Status "" and ID set.
func (s *Store) Tasks(ctx context.Context, ids []string) ([]Record, error) {
	if len(ids) == 0 {
		return []Record{}, nil
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.k.task(id), recordFields...)
		}
		return nil
	})
	if err != nil {
		return nil, redisErr("tasks", err)
	}
	out := make([]Record, len(ids))
	for i, c := range cmds {
		out[i] = parseRecord(ids[i], c.Val())
	}
	return out, nil
}

func parseRecord(id string, v []any) Record {
	r := Record{ID: id}
	if len(v) != len(recordFields) {
		return r
	}
	r.Status = task.Status(str(v[0]))
	r.FunctionID = str(v[1])
	if v[2] != nil {
		r.Result = []byte(str(v[2]))
	}
	if r.Status == task.Failed {
		r.Error = &task.Failure{Kind: task.Kind(str(v[3])), Message: str(v[4])}
	}
	if v[5] != nil {
		r.Stderr = []byte(str(v[5]))
	}
	r.Attempts = int(num(v[6]))
	r.Worker = str(v[7])
	r.CreatedAt = msTime(v[8])
	r.StartedAt = msTime(v[9])
	r.FinishedAt = msTime(v[10])
	r.DurationMs = num(v[11])
	r.Namespace = nsOrDefault(str(v[12]))
	r.CPUUnits = uint64(num(v[13]))
	return r
}
