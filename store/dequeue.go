package store

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Taking a QUEUED task off its queue and failing it, atomically: the primitive a cancel
// path needs (issue 16). It is here, unexported, beside the layout it depends on; the
// cancel endpoint wires it with its own failure kind.

// dequeueArgs are the KEYS and ARGV of scriptDequeue.
type dequeueArgs struct {
	id, ns  string
	kind    task.Kind
	msg     string
	taskTTL time.Duration
}

func (a dequeueArgs) call(k keys) call {
	ns := nsField(a.ns)
	return call{
		keys: k.taskKeys(append(k.shardKeys(2), k.queueOf(ns)), a.id),
		argv: []any{a.id, ns, a.taskTTL.Milliseconds(), k.doneChannel(), string(a.kind), a.msg},
	}
}

// scriptDequeue removes a QUEUED task from its namespace's queue (or the requeue list) and
// makes it FAILED with the given kind and message.
//
//	KEYS[1..5]  the shard's (luaShard)
//	KEYS[6]     the queue of the task's namespace
//	KEYS[7]     the task hash
//	ARGV[1]  id
//	ARGV[2]  the task's namespace as the caller read it ("" for the default)
//	ARGV[3]  TaskTTL (ms)
//	ARGV[4]  done channel
//	ARGV[5]  failure kind
//	ARGV[6]  failure message
//
// Returns 1 if it did; 0 if the task is not QUEUED, or QUEUED in no queue (a claimer took it
// and is about to start it), or of another namespace than declared (nothing written).
var scriptDequeue = newScript(luaPrelude + luaShard + luaFinish + `
local queue, key = KEYS[6], KEYS[7]
local id, ns, task_ttl, done_channel, kind, msg = unpack(ARGV, 1, 6)
local t = redis.call('HMGET', key, 'status', 'ns')
if t[1] ~= 'QUEUED' or ns_field(t[2]) ~= ns_field(ns) then return 0 end
if redis.call('LREM', queue, 0, id) + redis.call('LREM', requeue_key, 0, id) == 0 then return 0 end
finish(key, 'FAILED', task_ttl, {'err_kind', kind, 'err_msg', msg})
publish(done_channel, {id})
return 1
`)

// dequeue takes task id off its queue and makes it FAILED with kind and msg, if it is
// QUEUED; it reports whether it did. The task's namespace is read first (it names the
// queue); the script re-checks it. O(length of the queue) (LREM).
func (s *Store) dequeue(ctx context.Context, id string, kind task.Kind, msg string) (bool, error) {
	ns, err := s.rdb.HGet(ctx, s.k.task(id), fNamespace).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, redisErr("dequeue", err)
	}
	a := dequeueArgs{id: id, ns: nsOrDefault(ns), kind: kind, msg: msg, taskTTL: s.cfg.TaskTTL}
	n, err := s.eval(ctx, scriptDequeue, a.call(s.k.shard(s.k.shardOf(id)))).Int()
	if err != nil {
		return false, redisErr("dequeue", err)
	}
	return n == 1, nil
}
