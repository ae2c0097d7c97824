package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Tasks: submitting them (record + queue + wake-up) and reading their records.

// submitArgs are the KEYS and ARGV of scriptSubmit.
type submitArgs struct {
	functionID string
	ids        []string
	inputs     [][]byte
}

func (a submitArgs) call(k keys) call {
	argv := make([]any, 0, 3+2*len(a.ids))
	argv = append(argv, k.taskPrefix(), a.functionID, k.tasksChannel())
	for i, id := range a.ids {
		in := a.inputs[i]
		if in == nil {
			in = []byte{}
		}
		argv = append(argv, id, in)
	}
	return call{keys: []string{k.queue()}, argv: argv}
}

// scriptSubmit creates QUEUED tasks and queues them.
//
//	KEYS[1]  queue
//	ARGV[1]  task key prefix
//	ARGV[2]  function id
//	ARGV[3]  tasks channel
//	ARGV[4..] id, input, id, input, ...
//
// An id whose record exists already is skipped (a retried call queues nothing twice).
// Publishes the new ids once on the tasks channel. Returns the creation time (ms, as text).
var scriptSubmit = redis.NewScript(luaPrelude + `
local queue = KEYS[1]
local task_prefix, fid, tasks_channel = ARGV[1], ARGV[2], ARGV[3]
local ids = {}
for i = 4, #ARGV, 2 do
  local key = task_prefix .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'status', 'QUEUED', 'function_id', fid, 'input', ARGV[i + 1],
      'attempts', '0', 'created', now)
    ids[#ids + 1] = ARGV[i]
  end
end
bulk('LPUSH', queue, ids)
publish(tasks_channel, ids)
return now
`)

// Submit creates one QUEUED task per input for function fn, appends them to the durable
// queue in order and publishes one wake-up on the "tasks" channel, in one round trip
// (a script). It returns the new task ids, in input order.
func (s *Store) Submit(ctx context.Context, fn Function, inputs [][]byte) ([]string, error) {
	if fn.ID == "" {
		return nil, fmt.Errorf("store: submit: function id required")
	}
	if len(inputs) == 0 {
		return []string{}, nil
	}
	ids := make([]string, len(inputs))
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	a := submitArgs{functionID: fn.ID, ids: ids, inputs: inputs}
	if err := s.eval(ctx, scriptSubmit, a.call(s.k)).Err(); err != nil {
		return nil, redisErr("submit", err)
	}
	return ids, nil
}

// recordFields are read by Task and Tasks, in this order (never the input).
var recordFields = []string{fStatus, fFunctionID, fResult, fErrKind, fErrMsg, fStderr,
	fAttempts, fWorker, fCreated, fStarted, fFinished, fDurationMs, fCPUUnits}

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
	r.CPUUnits = uint64(num(v[12]))
	return r
}
