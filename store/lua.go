package store

import (
	"context"
	"faas/task"

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
//   - Task and function hash keys are built from prefixes passed in ARGV (Claim pops ids it
//     cannot know in advance); see keys.go for why this is single-slot safe.
//   - Every state change checks the record first: a task moves only from the state the
//     caller expects, at the attempt it names. This makes each script idempotent, so a
//     client retry after a lost reply (go-redis retries on network errors) changes nothing.

// call is one run of a script: its KEYS and ARGV, built together by the script's args type.
type call struct {
	keys []string
	argv []any
}

// eval runs sc with c's KEYS and ARGV.
func (s *Store) eval(ctx context.Context, sc *redis.Script, c call) *redis.Cmd {
	return sc.Run(ctx, s.rdb, c.keys, c.argv...)
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

// luaFinish marks a task terminal: status, extra fields, finished time, input dropped,
// TaskTTL set. `fields` is a flat list of field, value pairs. Needs luaQueues before it.
const luaFinish = `
local function finish(key, status, ttl, fields)
  count_done(key)
  redis.call('HSET', key, 'status', status, 'finished', now, unpack(fields))
  redis.call('HDEL', key, 'input')
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

// luaQueues holds the per-namespace queues, the ring of namespaces with queued work and the
// count of each namespace's unfinished tasks. Every script that uses it has the task key
// prefix ('<prefix>task:') as ARGV[1]; the other keys are named from it as keys.go names
// them (nsPrefix, queueOf, usage, nsRing, nsQueued), as task keys are built from a prefix.
//
//	queue_of(ns)          the queue key of namespace ns (nil or '' is the default)
//	usage_of(ns)          its usage hash (module_bytes, active)
//	announce_ns(ns)       puts ns on the ring (once) because it has queued work: at the
//	                      head, so that a namespace that had nothing queued is served next
//	                      (one turn each still holds among those with a backlog)
//	back_to_queue(key,id) puts task id back at the consumer end of its namespace's queue
//	count_done(key)       the task at key became terminal: one fewer active in its namespace
const luaQueues = `
local key_prefix = string.sub(ARGV[1], 1, -6)
local ring_key, nsq_key = key_prefix .. 'nsring', key_prefix .. 'nsqueued'
local function ns_prefix(ns)
  if not ns or ns == '' or ns == 'default' then return key_prefix end
  return key_prefix .. 'ns:' .. ns .. ':'
end
local function queue_of(ns) return ns_prefix(ns) .. 'queue' end
local function usage_of(ns) return ns_prefix(ns) .. 'usage' end
local function announce_ns(ns)
  if not ns or ns == '' then ns = 'default' end
  if redis.call('SADD', nsq_key, ns) == 1 then redis.call('LPUSH', ring_key, ns) end
end
local function back_to_queue(key, id)
  local ns = redis.call('HGET', key, 'ns')
  redis.call('RPUSH', queue_of(ns), id)
  announce_ns(ns)
end
local function count_done(key)
  local usage = usage_of(redis.call('HGET', key, 'ns'))
  -- Tasks queued before the count existed were never counted: never go below zero.
  if redis.call('HINCRBY', usage, 'active', -1) < 0 then redis.call('HSET', usage, 'active', 0) end
end
`
