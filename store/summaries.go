package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Summaries: task records read without their outputs unless those are small, for readers
// that must bound their memory (the server's /status, /result and /wait).

// leanFields are recordFields with the outputs' names replaced by one no task field has:
// HMGET answers nil there, so a summary keeps recordFields' positions without the outputs.
var leanFields = func() []string {
	f := append([]string(nil), recordFields...)
	for i, name := range f {
		if name == fResult || name == fStderr {
			f[i] = "-no-such-field-"
		}
	}
	return f
}()

// scriptIDs is the most ids Summaries reads with a script; see Summaries.
const scriptIDs = 32

// summariesArgs are the KEYS and ARGV of scriptSummaries.
type summariesArgs struct {
	ids    []string
	inline int64
}

func (a summariesArgs) call(k keys) call {
	return call{keys: k.taskKeys(nil, a.ids...), argv: []any{a.inline}}
}

// scriptSummaries reads task records with their outputs' size, and the outputs themselves
// only when they are at most inline bytes together.
//
//	KEYS[1..]  the task hashes (of one shard)
//	ARGV[1]    inline (bytes)
//
// Returns {{values of recordFields...}, output bytes, ...}, two values per id, the outputs'
// values nil when left out. A script, not a pipeline: one command, which go-redis does not
// retry on a read timeout, so a paused Redis costs a reader one timeout. The field names are
// written into the script (not passed in ARGV on every read).
var scriptSummaries = newScript(`
local inline = tonumber(ARGV[1])
local out = {}
for _, key in ipairs(KEYS) do
  local size = redis.call('HSTRLEN', key, 'result') + redis.call('HSTRLEN', key, 'stderr')
  if size <= inline then
    out[#out + 1] = redis.call('HMGET', key, ` + luaStrings(recordFields) + `)
  else
    out[#out + 1] = redis.call('HMGET', key, ` + luaStrings(leanFields) + `)
  end
  out[#out + 1] = size
end
return out
`)

// Summaries returns records with OutputBytes set but without their outputs (Result and
// Stderr stay nil) unless those are at most inline bytes together; a missing one has Status
// "" and ID set. Readers that may face many large results read these first and the large
// outputs only within a memory budget (a task's output can be 64 MiB), while small ones, the
// common case, come along.
//
// Up to scriptIDs ids, one script reads everything in one round trip (the single reads of
// /status and /result). Beyond, a pipeline reads the records and the outputs' sizes, and a
// second one, only when some outputs are small enough and not empty, reads those: a script
// over thousands of ids would hold Redis, and every dispatcher, for its whole run (it halved
// the throughput of batches collected with /wait).
func (s *Store) Summaries(ctx context.Context, ids []string, inline int64) ([]Record, error) {
	if len(ids) == 0 {
		return []Record{}, nil
	}
	if len(ids) <= scriptIDs {
		// A script reads one slot: ids of several shards take the pipeline.
		if g := byShard(s.k, ids, strID); len(g) == 1 {
			for sh := range g {
				return s.summariesScript(ctx, s.k.shard(sh), ids, inline)
			}
		}
	}
	type cmds struct {
		rec            *redis.SliceCmd
		result, stderr *redis.IntCmd
	}
	cs := make([]cmds, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			k := s.k.task(id)
			cs[i] = cmds{p.HMGet(ctx, k, leanFields...), p.HStrLen(ctx, k, fResult), p.HStrLen(ctx, k, fStderr)}
		}
		return nil
	})
	if err != nil {
		return nil, redisErr("summaries", err)
	}
	out := make([]Record, len(ids))
	var small []int
	for i, c := range cs {
		out[i] = parseRecord(ids[i], c.rec.Val())
		out[i].OutputBytes = c.result.Val() + c.stderr.Val()
		if n := out[i].OutputBytes; n > 0 && n <= inline && out[i].Status.Terminal() {
			small = append(small, i)
		}
	}
	if len(small) == 0 {
		return out, nil
	}
	outs := make([]*redis.SliceCmd, len(small))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, i := range small {
			outs[j] = p.HMGet(ctx, s.k.task(ids[i]), fResult, fStderr)
		}
		return nil
	})
	if err != nil {
		return nil, redisErr("summaries", err)
	}
	for j, i := range small {
		if v := outs[j].Val(); len(v) == 2 {
			if v[0] != nil {
				out[i].Result = []byte(str(v[0]))
			}
			if v[1] != nil {
				out[i].Stderr = []byte(str(v[1]))
			}
		}
	}
	return out, nil
}

// summariesScript is Summaries for a few ids: one round trip, however small the outputs.
func (s *Store) summariesScript(ctx context.Context, k keys, ids []string, inline int64) ([]Record, error) {
	res, err := s.eval(ctx, scriptSummaries, summariesArgs{ids: ids, inline: inline}.call(k)).Slice()
	if err != nil {
		return nil, redisErr("summaries", err)
	}
	if len(res) != 2*len(ids) {
		return nil, fmt.Errorf("store: summaries: %d values for %d ids", len(res), len(ids))
	}
	out := make([]Record, len(ids))
	for i := range ids {
		v, _ := res[2*i].([]any)
		out[i] = parseRecord(ids[i], v)
		out[i].OutputBytes = num(res[2*i+1])
	}
	return out, nil
}

// luaStrings writes ss as Lua string literals separated by commas (names of our own: no
// quotes or backslashes in them).
func luaStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}
