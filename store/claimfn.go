package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// What Claim needs besides the tasks: their functions (read outside the shard's scripts:
// they live under the deployment's tag), and the failure of tasks whose function is gone.

// maxRecentFns bounds the functions a claim reads on speculation (see evalGuessing).
const maxRecentFns = 8

// evalGuessing runs sc with c and, at the same time on another connection, reads the
// functions of the previous claim: most claims run the functions the last one ran, and the
// claim then waits one round trip for both. It returns the script's reply and, by function
// id, what was read (HMGET name, module, limits).
//
// The script is not put in the read's pipeline: go-redis retries a pipeline after a read
// timeout, and a claim run twice would leave the first run's tasks leased to a claimer that
// never got them (a single command is not retried on a timeout).
func (s *Store) evalGuessing(ctx context.Context, sc *script, c call) ([]any, map[string][]any, error) {
	var guess []string
	if p := s.recentFns.Load(); p != nil {
		guess = *p
	}
	fns := make([]*redis.SliceCmd, len(guess))
	read := make(chan struct{})
	go func() {
		defer close(read)
		if len(guess) == 0 {
			return
		}
		_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, fid := range guess {
				fns[i] = p.HMGet(ctx, s.k.function(fid), ffName, ffModule, ffLimits)
			}
			return nil
		})
	}()
	res, err := s.eval(ctx, sc, c).Slice()
	<-read
	if err != nil {
		return nil, nil, err
	}
	known := make(map[string][]any, len(guess))
	for i, fid := range guess {
		if fns[i] != nil && fns[i].Err() == nil {
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
