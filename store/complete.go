package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Recording where a task was sent and what it came to: Sent, SentModule, Complete.

// SentTo is a batch of tasks sent to one remote worker: Worker names it in the task
// record (a label the worker chose), Via is the identity of the connection it was sent on
// (derived from the worker's authenticated key), which Complete checks.
type SentTo struct {
	Worker string
	Via    string
	Refs   []task.Ref
}

// sentArgs are the KEYS and ARGV of scriptSent.
type sentArgs struct{ batches []SentTo }

func (a sentArgs) call(k keys) call {
	var ks []string
	var argv []any
	for _, b := range a.batches {
		for _, r := range b.Refs {
			ks = k.taskKeys(ks, r.ID)
			argv = append(argv, r.Attempt, b.Worker, b.Via)
		}
	}
	return call{keys: ks, argv: argv}
}

// scriptSent records the worker and the connection of tasks still RUNNING at the given
// attempt (never creates a record that expired).
//
//	KEYS[1..]  the task hashes (of one shard)
//	ARGV       per task hash, 3 values: attempt, worker, via
var scriptSent = newScript(`
for j = 1, #KEYS do
  local key, i = KEYS[j], 3 * j - 2
  local t = redis.call('HMGET', key, 'status', 'attempts')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(ARGV[i]) then
    redis.call('HSET', key, 'worker', ARGV[i + 1], 'sent_to', ARGV[i + 2])
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
	perShard := make(map[int][]SentTo, 1)
	for _, b := range batches {
		for sh, refs := range byShard(s.k, b.Refs, refID) {
			perShard[sh] = append(perShard[sh], SentTo{Worker: b.Worker, Via: b.Via, Refs: refs})
		}
	}
	for sh, bs := range perShard {
		if err := s.eval(ctx, scriptSent, sentArgs{batches: bs}.call(s.k.shard(sh))).Err(); err != nil {
			return redisErr("sent", err)
		}
	}
	return nil
}

// completeArgs are the KEYS and ARGV of scriptComplete.
type completeArgs struct {
	taskTTL  time.Duration
	outcomes []task.Outcome
	via      []string // per outcome, or nil: the connection it came from ("" unchecked)
}

func (a completeArgs) call(k keys) call {
	argv := make([]any, 0, 2+11*len(a.outcomes))
	argv = append(argv, a.taskTTL.Milliseconds(), k.doneChannel())
	ks := k.shardKeys(len(a.outcomes))
	for i, o := range a.outcomes {
		ks = k.taskKeys(ks, o.ID)
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
	return call{keys: ks, argv: argv}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// scriptComplete records outcomes; the first terminal state wins.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6..]   the task hashes, one per outcome
//	ARGV[1]  TaskTTL (ms)
//	ARGV[2]  done channel
//	ARGV[3..] per outcome, 11 values: id, attempt, status (COMPLETED|FAILED), result,
//	          err_kind, err_msg, stderr, duration_ms, worker, via, cpu_units
//
// An outcome applies only if the task is RUNNING at that attempt and, when via is not
// empty (a remote worker's), was sent on that connection (Sent recorded it); the rest (late,
// duplicate, expired, from another worker) change nothing. Publishes the applied ids once on the done channel.
// Returns {now (ms), then per applied outcome: id, namespace ("" default), function id}:
// what the dashboard's history (history.go) and the function logs (logs.go) need, read
// here because the script has the record in hand; both are written by Go, after the script.
var scriptComplete = newScript(luaPrelude + luaShard + luaDropInput + `
local task_ttl, done_channel = ARGV[1], ARGV[2]
local applied = {}
local info = {now}
for j = 6, #KEYS do
  local key, i = KEYS[j], 3 + 11 * (j - 6)
  local id, attempt, status, result, kind, msg, stderr, duration, worker, via, cpu = unpack(ARGV, i, i + 10)
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
    drop_input(key)
    redis.call('HDEL', key, 'sent_to')
    redis.call('PEXPIRE', key, task_ttl)
    applied[#applied + 1] = id
    info[#info + 1] = id
    info[#info + 1] = t[4] or ''
    info[#info + 1] = t[5] or ''
  end
end
bulk('ZREM', leases_key, applied)
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
	if s.cfg.Shards == 1 {
		a := completeArgs{taskTTL: s.cfg.TaskTTL, outcomes: outcomes, via: via}
		return s.completeShard(ctx, a, s.k)
	}
	idx := make([]int, len(outcomes))
	for i := range idx {
		idx[i] = i
	}
	total := 0
	for sh, is := range byShard(s.k, idx, func(i int) string { return outcomes[i].ID }) {
		a := completeArgs{taskTTL: s.cfg.TaskTTL, outcomes: make([]task.Outcome, len(is))}
		if via != nil {
			a.via = make([]string, len(is))
		}
		for j, i := range is {
			a.outcomes[j] = outcomes[i]
			if via != nil {
				a.via[j] = via[i]
			}
		}
		n, err := s.completeShard(ctx, a, s.k.shard(sh))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// completeShard runs scriptComplete for outcomes of one shard, then writes the history and
// the logs of those it applied: after the script, never inside it (they are keys of their
// own, in other slots on a Cluster), and an outcome is recorded even if they are not.
func (s *Store) completeShard(ctx context.Context, a completeArgs, k keys) (int, error) {
	res, err := s.evalDurable(ctx, "complete", scriptComplete, a.call(k)).StringSlice()
	if err != nil {
		return 0, redisErr("complete", err)
	}
	if len(res) < 1 || (len(res)-1)%3 != 0 {
		return 0, fmt.Errorf("store: complete: the script answered %d values", len(res))
	}
	n := (len(res) - 1) / 3
	if n > 0 {
		s.recordAfterComplete(ctx, a.outcomes, res)
	}
	return n, nil
}

// sentModuleArgs are the KEYS and ARGV of scriptSentModule.
type sentModuleArgs struct {
	via  string
	refs []task.Ref
}

func (a sentModuleArgs) call(k keys) call {
	argv := make([]any, 0, 1+len(a.refs))
	argv = append(argv, a.via)
	var ks []string
	for _, r := range a.refs {
		ks = k.taskKeys(ks, r.ID)
		argv = append(argv, r.Attempt)
	}
	return call{keys: ks, argv: argv}
}

// scriptSentModule returns the function ids of the tasks RUNNING at their attempt that
// were sent on connection via (each once). The functions' modules are compared by the
// caller: functions live in another slot of a Redis Cluster.
//
//	KEYS[1..]  the task hashes (of one shard)
//	ARGV[1]    via
//	ARGV[2..]  the attempt of each task hash
var scriptSentModule = newScript(`
local via = ARGV[1]
local fids, seen = {}, {}
for j = 1, #KEYS do
  local t = redis.call('HMGET', KEYS[j], 'status', 'attempts', 'sent_to', 'function_id')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(ARGV[j + 1]) and t[3] == via and t[4] and not seen[t[4]] then
    seen[t[4]] = true
    fids[#fids + 1] = t[4]
  end
end
return fids
`)

// SentModule reports whether one of refs was sent on connection via (see Sent), is still
// RUNNING at that attempt and runs the module hash: a worker may then fetch the module,
// also from a dispatcher that did not send the task itself (it restarted since).
func (s *Store) SentModule(ctx context.Context, via, hash string, refs []task.Ref) (bool, error) {
	if len(refs) == 0 || via == "" {
		return false, nil
	}
	for sh, group := range byShard(s.k, refs, refID) {
		fids, err := s.eval(ctx, scriptSentModule, sentModuleArgs{via: via, refs: group}.call(s.k.shard(sh))).StringSlice()
		if err != nil {
			return false, redisErr("sent module", err)
		}
		for _, fid := range fids {
			m, err := s.functionModule(ctx, fid)
			if err != nil {
				return false, err
			}
			if m == hash {
				return true, nil
			}
		}
	}
	return false, nil
}

// functionModule is the module hash of function fid ("" if there is none), from the cache
// when seen (functions are immutable).
func (s *Store) functionModule(ctx context.Context, fid string) (string, error) {
	if v, ok := s.fns.Load(fid); ok {
		return v.(Function).ModuleHash, nil
	}
	m, err := s.rdb.HGet(ctx, s.k.function(fid), ffModule).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return m, redisErr("sent module", err)
}
