package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"faas/task"
)

// Cancelling tasks. The store decides, atomically, and is the only one that writes the
// cancelled outcome: a QUEUED or RUNNING task becomes FAILED kind cancelled at once, like any
// completion (counted off its namespace's unfinished tasks, lease dropped, TTL set, waiters
// woken on the done channel). The attempt that was running is fenced off by the status alone
// (scriptComplete applies an outcome only to a RUNNING task), so whatever it reports later
// changes nothing, and the task is cancelled exactly once. The ids of the RUNNING ones are
// then published on the cancel channel: the dispatcher that holds one interrupts it to free
// its slot; if that message is lost, the dispatcher's next lease renewal finds the task no
// longer RUNNING and interrupts it then (see dispatch/cancel.go).

// MaxCancel bounds the ids of one Cancel call (and of one POST /tasks/cancel).
const MaxCancel = 1000

// queueSearch bounds how far from each end of a namespace's queue a cancelled QUEUED task
// is looked for: LREM alone walks the whole list, and cancelling a list of ids would cost
// ids × queue length. Tasks are cancelled near an end in practice (the oldest are at the
// consumer end, the newest at the producer end); one further in stays as a dead entry,
// which Claim drops when it pops it (as it drops the entries of withdrawn submissions).
const queueSearch = 1000

// Cancelled is what Cancel found and did for one id.
type Cancelled struct {
	ID string
	// Was is the task's status before the call: QUEUED or RUNNING (it is now FAILED
	// cancelled), COMPLETED or FAILED (left as it was), or "" when there is no such task in
	// the namespace (unknown, expired, or another namespace's).
	Was task.Status
	// Kind is the failure kind of a task that was FAILED already (Was == FAILED).
	Kind task.Kind
}

// Done reports whether this call cancelled the task.
func (c Cancelled) Done() bool { return c.Was == task.Queued || c.Was == task.Running }

// cancelArgs are the KEYS and ARGV of scriptCancel, for the ids of one task shard.
type cancelArgs struct {
	ns      string
	taskTTL time.Duration
	ids     []string
}

func (a cancelArgs) call(k keys) call {
	ns := nsField(a.ns)
	argv := make([]any, 0, 6+len(a.ids))
	argv = append(argv, ns, a.taskTTL.Milliseconds(), k.doneChannel(), k.cancelChannel(),
		string(task.KindCancelled), queueSearch)
	for _, id := range a.ids {
		argv = append(argv, id)
	}
	return call{keys: k.taskKeys(append(k.shardKeys(1+len(a.ids)), k.queueOf(ns)), a.ids...), argv: argv}
}

// scriptCancel cancels tasks of one namespace in one task shard.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6]     the namespace's queue in this shard
//	KEYS[7..]   the task hashes, one per id
//	ARGV[1]  namespace ("" for the default)
//	ARGV[2]  TaskTTL (ms)
//	ARGV[3]  done channel
//	ARGV[4]  cancel channel
//	ARGV[5]  failure kind (cancelled)
//	ARGV[6]  how far from each end of the queue a QUEUED task is looked for (queueSearch)
//	ARGV[7..] ids
//
// Returns {now (ms), {per id: its status before the call, its failure kind ("" if none),
// its function id, the milliseconds it ran if it was RUNNING (0 otherwise)}}; a task of
// another namespace reads as absent. Publishes the ids that ended on the done channel and
// those that were RUNNING on the cancel channel. A QUEUED task is taken off its queue or
// the shard's requeue list; one being claimed (leased while still QUEUED, in no list) loses
// that lease, and the claim's start script skips it (it is no longer QUEUED).
var scriptCancel = newScript(luaPrelude + luaShard + luaFinish + `
local queue = KEYS[6]
local ns, task_ttl, done_channel, cancel_channel, kind, search =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local out, done, running = {}, {}, {}
local ran = 0
for i = 7, #ARGV do
  local id, key = ARGV[i], KEYS[i]
  local t = redis.call('HMGET', key, 'status', 'ns', 'err_kind', 'started', 'function_id')
  local status = t[1]
  ran = 0
  if not status or (t[2] or '') ~= ns then
    status = ''
  elseif status == 'QUEUED' then
    if redis.call('LPOS', queue, id, 'RANK', -1, 'MAXLEN', search) then
      redis.call('LREM', queue, -1, id)
    elseif redis.call('LPOS', queue, id, 'RANK', 1, 'MAXLEN', search) then
      redis.call('LREM', queue, 1, id)
    else
      redis.call('LREM', requeue_key, 0, id)
    end
    redis.call('ZREM', leases_key, id)
    finish(key, 'FAILED', task_ttl, {'err_kind', kind, 'err_msg', 'cancelled while QUEUED'})
    done[#done + 1] = id
  elseif status == 'RUNNING' then
    ran = math.max(now_n - (tonumber(t[4]) or now_n), 0)
    finish(key, 'FAILED', task_ttl, {'err_kind', kind, 'err_msg', 'cancelled while RUNNING',
      'duration_ms', n(ran)})
    redis.call('HDEL', key, 'sent_to')
    redis.call('ZREM', leases_key, id)
    done[#done + 1] = id
    running[#running + 1] = id
  end
  out[#out + 1] = status
  out[#out + 1] = (status == 'FAILED' and t[3]) or ''
  out[#out + 1] = (status ~= '' and t[5]) or ''
  out[#out + 1] = ran
end
publish(done_channel, done)
publish(cancel_channel, running)
return {now, out}
`)

// Cancel cancels the tasks ids of namespace ns (at most MaxCancel), in one round trip per
// task shard: each QUEUED or RUNNING one becomes FAILED with kind cancelled (see the top of
// this file). It returns one Cancelled per id, in order. Ids that are not uuids are
// answered as absent without asking Redis.
func (s *Store) Cancel(ctx context.Context, ns string, ids []string) ([]Cancelled, error) {
	if len(ids) > MaxCancel {
		return nil, fmt.Errorf("store: cancel: %d ids, at most %d per call", len(ids), MaxCancel)
	}
	out := make([]Cancelled, len(ids))
	at := make([]int, 0, len(ids))
	for i, id := range ids {
		out[i].ID = id
		// A task key is built from the id: nothing that could name another key (or be
		// huge) goes in.
		if validID(id) {
			at = append(at, i)
		}
	}
	for sh, is := range byShard(s.k, at, func(i int) string { return ids[i] }) {
		a := cancelArgs{ns: ns, taskTTL: s.cfg.TaskTTL, ids: make([]string, len(is))}
		for j, i := range is {
			a.ids[j] = ids[i]
		}
		reply, err := s.eval(ctx, scriptCancel, a.call(s.k.shard(sh))).Slice()
		if err != nil {
			return nil, redisErr("cancel", err)
		}
		var res []any
		if len(reply) == 2 {
			res, _ = reply[1].([]any)
		}
		if len(res) != 4*len(is) {
			return nil, fmt.Errorf("store: cancel: %d values for %d ids", len(res), len(is))
		}
		// The cancelled tasks go to their functions' logs and the dashboard's history like
		// any other outcome (after the script, as for Complete).
		info := []string{str(reply[0])}
		var outcomes []task.Outcome
		for j, i := range is {
			out[i].Was = task.Status(str(res[4*j]))
			out[i].Kind = task.Kind(str(res[4*j+1]))
			if out[i].Done() {
				info = append(info, ids[i], nsField(ns), str(res[4*j+2]))
				ran, _ := res[4*j+3].(int64) // ms a RUNNING task ran until its cancel
				outcomes = append(outcomes, task.Outcome{Ref: task.Ref{ID: ids[i]}, Duration: time.Duration(ran) * time.Millisecond,
					Failure: &task.Failure{Kind: task.KindCancelled, Message: "cancelled while " + string(out[i].Was)}})
			}
		}
		if len(outcomes) > 0 {
			s.recordAfterComplete(ctx, outcomes, info)
		}
	}
	return out, nil
}

// validID accepts task ids as faas makes them: 36 characters of hex digits and dashes.
func validID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '-') {
			return false
		}
	}
	return true
}

// ListenCancels subscribes to the cancel channel and calls onCancel with the ids of each
// message (RUNNING tasks that were just cancelled) until ctx ends; it re-subscribes after
// outages. A message lost meanwhile is made up for by lease renewal (Renew reports the
// task lost). Returns nil at ctx end.
func (s *Store) ListenCancels(ctx context.Context, onCancel func(ids []string)) error {
	return s.listen(ctx, s.k.cancelChannel(), func() {}, func(payload string) {
		if ids := strings.Fields(payload); len(ids) > 0 {
			onCancel(ids)
		}
	})
}
