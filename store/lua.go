package store

import (
	"context"
	"faas/task"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The store's Lua scripts sit beside the Go methods that run them; this file holds what
// they share. Each script runs atomically on the Redis server, costs one round trip
// (EVALSHA; go-redis falls back to EVAL once after a NOSCRIPT) and does O(batch) work.
//
// Conventions:
//   - A script's KEYS and ARGV are built by one small Go type (claimArgs, completeArgs...)
//     declared right above the script, and the script's first lines read them into named
//     locals in that same order: the argument list is written once, in one place, and the
//     Lua body never indexes ARGV by number except to walk a variable-length tail.
//   - Time comes from the server (redis.call('TIME')), never from the caller, so leases
//     written by different dispatchers on different hosts compare on one clock.
//   - Numbers handed to redis.call go through n() ('%.0f') so that real Redis and
//     miniredis (gopher-lua) write the same decimal text.
//   - Failure kinds come from Go (package task), never spelled in Lua.
//   - Every key a script touches is in its KEYS (the store tests run every script under a
//     check of that, declared_test.go). Where the keys are only known from what Redis holds
//     (the ids Claim pops, the leases that expired), the work is cut in two: one script or
//     read finds them, a second script, with them declared, re-checks each and acts.
//   - Every state change checks the record first: a task moves only from the state the
//     caller expects, at the attempt it names. This makes each script idempotent, so a
//     client retry after a lost reply (go-redis retries on network errors) changes nothing.

// call is one run of a script: its KEYS and ARGV, built together by the script's args type.
type call struct {
	keys []string
	argv []any
}

// script is one of the store's Lua scripts, its source kept so that a test can run every
// script under a check of the keys it touches (lua_keys_test.go).
type script struct {
	src string
	rs  *redis.Script
}

// scripts is every script of the store, in the order they were declared.
var scripts []*script

func newScript(src string) *script {
	sc := &script{src: src, rs: redis.NewScript(src)}
	scripts = append(scripts, sc)
	return sc
}

// eval runs sc with c's KEYS and ARGV.
func (s *Store) eval(ctx context.Context, sc *script, c call) *redis.Cmd {
	return sc.rs.Run(ctx, s.rdb, c.keys, c.argv...)
}

// luaPrelude is put before every script that needs the clock or numbers.
const luaPrelude = `
local function n(x) return string.format('%.0f', x) end
-- bulk calls cmd with fixed args then the items of list, in chunks (unpack has a limit).
local function bulk(cmd, key, list)
  for i = 1, #list, 500 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 499, #list)))
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local now_n = now_ms()  -- the script's one clock reading (ms)
local now = n(now_n)    -- the same, as the decimal text stored in records
-- joined returns the items of list, space-separated. It concatenates in chunks: gopher-lua
-- (the embedded Redis of 'faas dev') overflows its registry on one table.concat of a few
-- thousand items, and a script must take the documented batch of 10,000.
local function joined(list)
  local parts = {}
  for i = 1, #list, 500 do
    parts[#parts + 1] = table.concat(list, ' ', i, math.min(i + 499, #list))
  end
  return table.concat(parts, ' ')
end
-- publish announces ids, space-separated, on channel (nothing when there are none).
local function publish(channel, ids)
  if #ids > 0 then redis.call('PUBLISH', channel, joined(ids)) end
end
`

// InputKept is the largest input a task keeps once it is terminal (until its TaskTTL), for
// the dashboard's preview and its "run again" (GET /tasks/{id}/input); a larger input is
// dropped when the task ends. At most this many bytes per finished task: 512 MiB for a
// million finished tasks inside the TTL in the worst case, nothing for the usual few bytes.
const InputKept = 512

// luaDropInput drops a terminal task's input unless it is at most InputKept bytes.
var luaDropInput = `
local function drop_input(key)
  if redis.call('HSTRLEN', key, 'input') > ` + strconv.Itoa(InputKept) + ` then redis.call('HDEL', key, 'input') end
end
`

// luaFinish marks a task terminal: status, extra fields, finished time, input dropped,
// TaskTTL set. `fields` is a flat list of field, value pairs. Needs luaShard before it.
var luaFinish = luaDropInput + `
local function finish(key, status, ttl, fields)
  count_done(key)
  redis.call('HSET', key, 'status', status, 'finished', now, unpack(fields))
  drop_input(key)
  redis.call('PEXPIRE', key, ttl)
end
`

// refArgs appends the id, attempt pairs of refs: the variable tail of several scripts.
func refArgs(argv []any, refs []task.Ref) []any {
	for _, r := range refs {
		argv = append(argv, r.ID, r.Attempt)
	}
	return argv
}

// luaShard is put before every script of a task shard. Such a script's KEYS begin with the
// shard's five keys (keys.shardKeys), read here; its own keys, then its task hashes, follow.
//
//	KEYS[1]  leases    zset  RUNNING (and being claimed) task ids by lease deadline
//	KEYS[2]  active    hash  namespace → its unfinished (queued + running) tasks here
//	KEYS[3]  requeue   list  tasks handed back (lost worker, release, expired lease):
//	                         Claim takes them before any namespace's queue
//	KEYS[4]  nsring    list  namespaces that may have queued tasks, in turn order
//	KEYS[5]  nsqueued  set   the same, to put each on the ring once
//
//	announce_ns(ns)  puts ns on the ring (once) because it has queued work: at the head, so
//	                 that a namespace that had nothing queued is served next (one turn each
//	                 still holds among those with a backlog)
//	back_to_queue(id) puts task id at the consumer end of the requeue list
//	count_done(key)  the task at key became terminal: one fewer active in its namespace
const luaShard = `
local leases_key, active_key, requeue_key, ring_key, nsq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function ns_field(ns)
  if not ns or ns == '' then return 'default' end
  return ns
end
local function announce_ns(ns)
  ns = ns_field(ns)
  if redis.call('SADD', nsq_key, ns) == 1 then redis.call('LPUSH', ring_key, ns) end
end
local function back_to_queue(id) redis.call('RPUSH', requeue_key, id) end
local function count_done(key)
  local ns = ns_field(redis.call('HGET', key, 'ns'))
  -- Tasks queued before the count existed were never counted: never go below zero.
  if redis.call('HINCRBY', active_key, ns, -1) < 0 then redis.call('HSET', active_key, ns, 0) end
end
`
