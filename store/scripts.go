package store

import "github.com/redis/go-redis/v9"

// Every Lua script of the store. Each runs atomically on the Redis server, costs one round
// trip (EVALSHA; go-redis falls back to EVAL once after a NOSCRIPT) and does O(batch) work.
//
// Conventions:
//   - Time comes from the server (redis.call('TIME')), never from the caller, so leases
//     written by different dispatchers on different hosts compare on one clock.
//   - Numbers handed to redis.call go through n() ('%.0f') so that real Redis and
//     miniredis (gopher-lua) write the same decimal text.
//   - Task and function hash keys are built from prefixes passed in ARGV (Claim pops ids it
//     cannot know in advance); see keys.go for why this is single-slot safe.
//   - Every state change checks the record first: a task moves only from the state the
//     caller expects, at the attempt it names. This makes each script idempotent, so a
//     client retry after a lost reply (go-redis retries on network errors) changes nothing.

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
`

// luaFinish marks a task terminal: status, extra fields, finished time, input dropped,
// TaskTTL set. `fields` is a flat list of field, value pairs.
const luaFinish = `
local function finish(key, status, ttl, fields)
  redis.call('HSET', key, 'status', status, 'finished', now, unpack(fields))
  redis.call('HDEL', key, 'input')
  redis.call('PEXPIRE', key, ttl)
end
`

// luaRequeue puts one RUNNING task back (charged attempt), or fails it with worker_lost
// once it has used MaxAttempts. Needs KEYS[1]=queue, KEYS[2]=leases and luaFinish.
// Appends the id to `done` (failed) or `queued` (requeued).
const luaRequeue = `
local function requeue(key, id, attempts, max, ttl, reason, done, queued)
  redis.call('ZREM', KEYS[2], id)
  if attempts >= max then
    finish(key, 'FAILED', ttl, {'err_kind', 'worker_lost', 'err_msg',
      'worker lost on attempt ' .. n(attempts) .. ' of ' .. n(max) .. ' (' .. reason .. '); not retried'})
    done[#done + 1] = id
  else
    redis.call('HSET', key, 'status', 'QUEUED')
    redis.call('RPUSH', KEYS[1], id)
    queued[#queued + 1] = id
  end
end
local function publish(channel, ids)
  if #ids > 0 then redis.call('PUBLISH', channel, table.concat(ids, ' ')) end
end
`

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
local ids = {}
for i = 4, #ARGV, 2 do
  local key = ARGV[1] .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'status', 'QUEUED', 'function_id', ARGV[2], 'input', ARGV[i + 1],
      'attempts', '0', 'created', now)
    ids[#ids + 1] = ARGV[i]
  end
end
bulk('LPUSH', KEYS[1], ids)
if #ids > 0 then redis.call('PUBLISH', ARGV[3], table.concat(ids, ' ')) end
return now
`)

// scriptClaim pops up to n QUEUED tasks, marks them RUNNING and leases them.
//
//	KEYS[1]  queue
//	KEYS[2]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  function key prefix
//	ARGV[3]  n (max tasks)
//	ARGV[4]  owner
//	ARGV[5]  LeaseTTL (ms)
//	ARGV[6]  TaskTTL (ms)
//	ARGV[7]  done channel
//
// Popped ids that are not QUEUED (record expired, or a duplicate) are dropped. A task whose
// function is gone becomes FAILED kind internal. Returns
// {now, {id, function_id, input, attempt, ...}, {function_id, name, module, limits, ...}}
// with each function once.
var scriptClaim = redis.NewScript(luaPrelude + luaFinish + `
local max = tonumber(ARGV[3])
local deadline = n(now_n + tonumber(ARGV[5]))
local tasks, fns, seen, done, leases = {}, {}, {}, {}, {}
local claimed = 0
while claimed < max do
  -- RPOP with a count (Redis 6.2+) takes what is still wanted in one call.
  local popped = redis.call('RPOP', KEYS[1], max - claimed)
  if not popped then break end
  for _, id in ipairs(popped) do
    local key = ARGV[1] .. id
    local t = redis.call('HMGET', key, 'status', 'function_id', 'input', 'attempts')
    if t[1] == 'QUEUED' then
      local fid = t[2] or ''
      if seen[fid] == nil then
        local f = redis.call('HMGET', ARGV[2] .. fid, 'name', 'module', 'limits')
        if f[1] and f[2] then
          seen[fid] = true
          fns[#fns + 1] = fid; fns[#fns + 1] = f[1]; fns[#fns + 1] = f[2]; fns[#fns + 1] = f[3] or ''
        else
          seen[fid] = false
        end
      end
      if seen[fid] then
        local attempt = (tonumber(t[4]) or 0) + 1
        redis.call('HSET', key, 'status', 'RUNNING', 'attempts', n(attempt), 'owner', ARGV[4],
          'started', now)
        leases[#leases + 1] = deadline; leases[#leases + 1] = id
        tasks[#tasks + 1] = id; tasks[#tasks + 1] = fid; tasks[#tasks + 1] = t[3] or ''
        tasks[#tasks + 1] = attempt
        claimed = claimed + 1
      else
        finish(key, 'FAILED', ARGV[6], {'err_kind', 'internal', 'err_msg',
          'function ' .. tostring(fid) .. ' not found'})
        done[#done + 1] = id
      end
    end
  end
end
bulk('ZADD', KEYS[2], leases)
if #done > 0 then redis.call('PUBLISH', ARGV[7], table.concat(done, ' ')) end
return {now, tasks, fns}
`)

// scriptComplete records outcomes; the first terminal state wins.
//
//	KEYS[1]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  TaskTTL (ms)
//	ARGV[3]  done channel
//	ARGV[4..] per outcome, 9 values: id, attempt, status (COMPLETED|FAILED), result,
//	          err_kind, err_msg, stderr, duration_ms, worker
//
// An outcome applies only if the task is RUNNING at that attempt; the rest (late, duplicate,
// expired) change nothing. Publishes the applied ids once on the done channel.
// Returns the number applied.
var scriptComplete = redis.NewScript(luaPrelude + `
local applied = {}
for i = 4, #ARGV, 9 do
  local id = ARGV[i]
  local key = ARGV[1] .. id
  local t = redis.call('HMGET', key, 'status', 'attempts')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(ARGV[i + 1]) then
    if ARGV[i + 2] == 'COMPLETED' then
      redis.call('HSET', key, 'status', 'COMPLETED', 'finished', now, 'result', ARGV[i + 3],
        'stderr', ARGV[i + 6], 'duration_ms', ARGV[i + 7], 'worker', ARGV[i + 8])
    else
      redis.call('HSET', key, 'status', 'FAILED', 'finished', now, 'err_kind', ARGV[i + 4],
        'err_msg', ARGV[i + 5], 'stderr', ARGV[i + 6], 'duration_ms', ARGV[i + 7],
        'worker', ARGV[i + 8])
    end
    redis.call('HDEL', key, 'input')
    redis.call('PEXPIRE', key, ARGV[2])
    applied[#applied + 1] = id
  end
end
bulk('ZREM', KEYS[1], applied)
if #applied > 0 then redis.call('PUBLISH', ARGV[3], table.concat(applied, ' ')) end
return #applied
`)

// scriptRenew extends leases of tasks still RUNNING at the given attempt.
//
//	KEYS[1]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  LeaseTTL (ms)
//	ARGV[3..] id, attempt, id, attempt, ...
//
// Returns the ids that were NOT renewed (no longer this attempt's: finished, requeued,
// expired): their holder should stop reporting on them.
var scriptRenew = redis.NewScript(luaPrelude + `
local deadline = n(now_n + tonumber(ARGV[2]))
local lost = {}
for i = 3, #ARGV, 2 do
  local t = redis.call('HMGET', ARGV[1] .. ARGV[i], 'status', 'attempts')
  if t[1] == 'RUNNING' and tonumber(t[2]) == tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
`)

// scriptRequeue hands back tasks whose worker was lost (attempt charged).
//
//	KEYS[1]  queue
//	KEYS[2]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  MaxAttempts
//	ARGV[3]  TaskTTL (ms)
//	ARGV[4]  done channel
//	ARGV[5]  tasks channel
//	ARGV[6]  reason
//	ARGV[7..] id, attempt, id, attempt, ...
//
// Only tasks RUNNING at that attempt move; they go to the consumer end of the queue (they
// run next), the first ref first. Returns {requeued, failed}.
var scriptRequeue = redis.NewScript(luaPrelude + luaFinish + luaRequeue + `
local max = tonumber(ARGV[2])
local done, queued = {}, {}
-- Backwards: each RPUSH lands at the consumer end, so the first ref is claimed again first.
for i = #ARGV - 1, 7, -2 do
  local key = ARGV[1] .. ARGV[i]
  local t = redis.call('HMGET', key, 'status', 'attempts')
  local a = tonumber(t[2])
  if t[1] == 'RUNNING' and a == tonumber(ARGV[i + 1]) then
    requeue(key, ARGV[i], a, max, ARGV[3], ARGV[6], done, queued)
  end
end
publish(ARGV[4], done)
publish(ARGV[5], queued)
return {#queued, #done}
`)

// scriptRecover requeues (as scriptRequeue) tasks whose lease deadline has passed.
//
//	KEYS[1]  queue
//	KEYS[2]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  MaxAttempts
//	ARGV[3]  TaskTTL (ms)
//	ARGV[4]  done channel
//	ARGV[5]  tasks channel
//	ARGV[6]  batch limit
//	KEYS[3]  recoverer clock (hash: last = the previous run, hold = no recovery before)
//	ARGV[7]  gap (ms): a previous run older than this means Redis or every dispatcher was away
//	ARGV[8]  hold (ms): how long recovery then waits
//
// A lease whose task is no longer RUNNING (finished, expired) is just dropped. Atomic, so
// several dispatchers may run it at once: each expired lease is handled by exactly one.
//
// Outage guard: Redis's clock runs on while Redis is paused, restarting or cut off from every
// dispatcher, so after an outage longer than LeaseTTL every lease has expired, those of live
// dispatchers included; and a recovery sent during the outage may be executed when Redis
// comes back. So when the previous run is older than the gap (recoverers run every
// LeaseTTL/4; the very first run has no previous one), recovery waits `hold`, long enough for the live dispatchers to renew their
// leases (a renewal succeeds while the task is RUNNING at that attempt, even past its
// deadline). Only Redis's own clock is used. Returns {requeued, failed, leases examined}.
var scriptRecover = redis.NewScript(luaPrelude + luaFinish + luaRequeue + `
local clock = redis.call('HMGET', KEYS[3], 'last', 'hold')
local last, hold = tonumber(clock[1]), tonumber(clock[2]) or 0
if last ~= nil and now_n - last > tonumber(ARGV[7]) then
  hold = now_n + tonumber(ARGV[8])
  redis.call('HSET', KEYS[3], 'hold', n(hold))
end
redis.call('HSET', KEYS[3], 'last', now)
if now_n < hold then return {0, 0, 0} end
local max = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))
local done, queued = {}, {}
for j = #ids, 1, -1 do -- backwards: the lease that expired first is claimed again first
  local id = ids[j]
  local key = ARGV[1] .. id
  local t = redis.call('HMGET', key, 'status', 'attempts')
  if t[1] == 'RUNNING' then
    requeue(key, id, tonumber(t[2]) or 0, max, ARGV[3], 'lease expired', done, queued)
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
publish(ARGV[4], done)
publish(ARGV[5], queued)
return {#queued, #done, #ids}
`)

// scriptRelease hands back tasks that never started (attempt not charged), at the consumer
// end of the queue so they run next, in their original order.
//
//	KEYS[1]  queue
//	KEYS[2]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  tasks channel
//	ARGV[3..] id, attempt, id, attempt, ... (in claim order)
//
// Returns the number released.
var scriptRelease = redis.NewScript(luaPrelude + `
local ids = {}
for i = #ARGV - 1, 3, -2 do
  local key = ARGV[1] .. ARGV[i]
  local t = redis.call('HMGET', key, 'status', 'attempts')
  local a = tonumber(t[2])
  if t[1] == 'RUNNING' and a == tonumber(ARGV[i + 1]) then
    redis.call('HSET', key, 'status', 'QUEUED', 'attempts', n(a - 1))
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('RPUSH', KEYS[1], ARGV[i])
    ids[#ids + 1] = ARGV[i]
  end
end
if #ids > 0 then redis.call('PUBLISH', ARGV[2], table.concat(ids, ' ')) end
return #ids
`)

// scriptReleaseStrays hands back, uncharged, the tasks leased to owner ARGV[3] that the owner
// does not hold: those taken by a Claim whose answer was lost (the caller timed out, but
// Redis ran it, e.g. on resuming from a freeze). They go to the consumer end of the queue.
//
//	KEYS[1]  queue
//	KEYS[2]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  tasks channel
//	ARGV[3]  owner
//	ARGV[4..] ids the owner holds
//
// O(leases): every lease is examined. Returns the number released.
var scriptReleaseStrays = redis.NewScript(luaPrelude + `
local held = {}
for i = 4, #ARGV do held[ARGV[i]] = true end
local ids = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if not held[id] then
    local key = ARGV[1] .. id
    local t = redis.call('HMGET', key, 'status', 'attempts', 'owner')
    if t[1] == 'RUNNING' and t[3] == ARGV[3] then
      redis.call('HSET', key, 'status', 'QUEUED', 'attempts', n(math.max((tonumber(t[2]) or 1) - 1, 0)))
      redis.call('ZREM', KEYS[2], id)
      redis.call('RPUSH', KEYS[1], id)
      ids[#ids + 1] = id
    end
  end
end
if #ids > 0 then redis.call('PUBLISH', ARGV[2], table.concat(ids, ' ')) end
return #ids
`)

// scriptSetWorker records the worker of tasks still at the given attempt (never creates a
// record that expired).
//
//	ARGV[1]  task key prefix
//	ARGV[2]  worker
//	ARGV[3..] id, attempt, ...
var scriptSetWorker = redis.NewScript(`
for i = 3, #ARGV, 2 do
  local key = ARGV[1] .. ARGV[i]
  if tonumber(redis.call('HGET', key, 'attempts')) == tonumber(ARGV[i + 1]) then
    redis.call('HSET', key, 'worker', ARGV[2])
  end
end
return 0
`)

// scriptFunction reads a function by id, or else by name, in one round trip.
//
//	KEYS[1]  function:<idOrName>
//	KEYS[2]  fname:<idOrName>
//	ARGV[1]  function key prefix
//
// Returns HGETALL of the function, empty if none.
var scriptFunction = redis.NewScript(`
local f = redis.call('HGETALL', KEYS[1])
if #f > 0 then return f end
local id = redis.call('GET', KEYS[2])
if not id then return {} end
return redis.call('HGETALL', ARGV[1] .. id)
`)

// scriptRequeueOwner requeues (as scriptRequeue, attempt charged) every leased task whose
// owner is ARGV[6]: a dispatcher restarted under the same identity takes back at once what
// its previous run held, instead of waiting for the leases to expire.
//
//	KEYS[1]  queue
//	KEYS[2]  leases
//	ARGV[1]  task key prefix
//	ARGV[2]  MaxAttempts
//	ARGV[3]  TaskTTL (ms)
//	ARGV[4]  done channel
//	ARGV[5]  tasks channel
//	ARGV[6]  owner
//	ARGV[7]  reason
//
// O(leases): every lease is examined. Returns {requeued, failed}.
var scriptRequeueOwner = redis.NewScript(luaPrelude + luaFinish + luaRequeue + `
local max = tonumber(ARGV[2])
local done, queued = {}, {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local key = ARGV[1] .. id
  local t = redis.call('HMGET', key, 'status', 'attempts', 'owner')
  if t[1] ~= 'RUNNING' then
    redis.call('ZREM', KEYS[2], id)
  elseif t[3] == ARGV[6] then
    requeue(key, id, tonumber(t[2]) or 0, max, ARGV[3], ARGV[7], done, queued)
  end
end
publish(ARGV[4], done)
publish(ARGV[5], queued)
return {#queued, #done}
`)
