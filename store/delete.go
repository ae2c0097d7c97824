package store

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// Deleting a function: its records go at once; a task of it still queued becomes FAILED
// when a dispatcher claims it (scriptClaim: its function is gone), a running one finishes.
// The module goes with the last function that uses it, in any namespace.

// deleteArgs are the KEYS and ARGV of scriptDelete.
type deleteArgs struct{ ns, idOrName string }

func (a deleteArgs) call(k keys) call {
	ns := a.ns
	if ns == DefaultNamespace {
		ns = ""
	}
	return call{
		keys: []string{k.function(a.idOrName), k.fname(ns, a.idOrName), k.functions(ns), k.usage(ns)},
		argv: []any{k.functionPrefix(), ns, k.fname(ns, ""), k.modref(""), k.module(""),
			k.upgraded(), k.functions(DefaultNamespace), k.usage(DefaultNamespace)},
	}
}

// scriptDelete deletes a function of a namespace, found by id or else by name.
//
//	KEYS[1]  function:<idOrName>
//	KEYS[2]  <ns>fname:<idOrName>
//	KEYS[3]  <ns>functions
//	KEYS[4]  <ns>usage
//	ARGV[1]  function key prefix
//	ARGV[2]  namespace ("" for the default)
//	ARGV[3]  <ns>fname: prefix
//	ARGV[4]  modref: prefix
//	ARGV[5]  module: prefix
//	ARGV[6..8]  upgraded, functions and usage of the default namespace (luaUpgradeRefs)
//
// The name goes too if it pointed at this function (an older function of the same name is
// then reached by its id only). Returns {} if there is no such function in the namespace,
// else {id, name, module hash, 1 if the module was deleted}.
var scriptDelete = redis.NewScript(`
local by_id, by_name, functions, usage = unpack(KEYS)
local fn_prefix, ns, fname_prefix, modref_prefix, module_prefix = unpack(ARGV, 1, 5)
local upgraded, default_functions, default_usage = unpack(ARGV, 6, 8)
` + luaUpgradeRefs + `
local id
if redis.call('EXISTS', by_id) == 1 and (redis.call('HGET', by_id, 'ns') or '') == ns then
  id = redis.call('HGET', by_id, 'id')
else
  id = redis.call('GET', by_name)
  if not id then return {} end
end
local key = fn_prefix .. id
local f = redis.call('HMGET', key, 'name', 'module', 'size')
if not f[1] then return {} end
redis.call('DEL', key)
redis.call('ZREM', functions, id)
if redis.call('GET', fname_prefix .. f[1]) == id then redis.call('DEL', fname_prefix .. f[1]) end
redis.call('HINCRBY', usage, 'module_bytes', -(tonumber(f[3]) or 0))
local gone = 0
local modref = modref_prefix .. f[2]
redis.call('SREM', modref, id)
if redis.call('SCARD', modref) == 0 then
  redis.call('DEL', module_prefix .. f[2])
  gone = 1
end
return {id, f[1], f[2], gone}
`)

// Deleted is what DeleteFunction removed.
type Deleted struct {
	Function      Function
	ModuleDeleted bool // the module's last function is gone: its bytes left Redis
}

// DeleteFunction deletes a function of namespace ns by id, or by name (the newest in ns).
// ErrNotFound if none (another namespace's id is none).
func (s *Store) DeleteFunction(ctx context.Context, ns, idOrName string) (Deleted, error) {
	ns = nsOrDefault(ns)
	res, err := s.eval(ctx, scriptDelete, deleteArgs{ns: ns, idOrName: idOrName}.call(s.k)).Slice()
	if err != nil {
		return Deleted{}, redisErr("delete function", err)
	}
	if len(res) < 4 {
		return Deleted{}, fmt.Errorf("store: function %q: %w", idOrName, ErrNotFound)
	}
	d := Deleted{
		Function:      Function{ID: str(res[0]), Name: str(res[1]), ModuleHash: str(res[2]), Namespace: ns},
		ModuleDeleted: num(res[3]) == 1,
	}
	if _, ok := s.fns.LoadAndDelete(d.Function.ID); ok {
		s.nfns.Add(-1)
	}
	if d.ModuleDeleted {
		// Outside the script: a channel is no key of a slot (docs/ARCHITECTURE.md). A lost
		// publish leaves the module in caches until their bounds age it out; the deletion
		// itself stands, so it is logged, not returned.
		if err := s.rdb.Publish(ctx, s.k.evictChannel(), d.Function.ModuleHash).Err(); err != nil {
			slog.Warn("store: announcing a deleted module failed; caches keep it until aged out",
				"hash", d.Function.ModuleHash, "err", redisErr("publish eviction", err))
		}
	}
	return d, nil
}

// ListenEvictions subscribes to "<prefix>evict" and calls evict with the hash of each module
// whose last function was deleted, until ctx ends (nil then). Re-subscribes after outages; a
// module deleted while nobody listened stays in caches until their bounds age it out.
// Payloads that are not a module hash are dropped.
func (s *Store) ListenEvictions(ctx context.Context, evict func(hash string)) error {
	return s.listen(ctx, s.k.evictChannel(), func() {}, func(payload string) {
		if isModuleHash(payload) {
			evict(payload)
		}
	})
}

// isModuleHash accepts a lowercase hex sha256, the form of every module hash.
func isModuleHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// luaUpgradeRefs gives the functions registered before modules were reference-counted (by
// a faas without namespaces: all in the default namespace, without an ns field) their
// place in their module's modref set and in the default namespace's module bytes, once
// (flag upgraded.modrefs). Deletion runs it first, in the same script, so that it never
// deletes a module an older function still uses. SADD tells an already counted function,
// so a second run changes nothing.
const luaUpgradeRefs = `
if redis.call('HEXISTS', upgraded, 'modrefs') == 0 then
  for _, fid in ipairs(redis.call('ZRANGE', default_functions, 0, -1)) do
    local f = redis.call('HMGET', fn_prefix .. fid, 'module', 'size', 'ns')
    if f[1] and not f[3] and redis.call('SADD', modref_prefix .. f[1], fid) == 1 then
      redis.call('HINCRBY', default_usage, 'module_bytes', tonumber(f[2]) or 0)
    end
  end
  redis.call('HSET', upgraded, 'modrefs', '1')
end
`
