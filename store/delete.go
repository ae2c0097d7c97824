package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// Deleting a function: its records go at once; a task of it still queued becomes FAILED
// when a dispatcher claims it (Claim: its function is gone), a running one finishes. The
// module goes with the last function that uses it, in any namespace.
//
// The function to delete is looked up first (by id or name, as FunctionIn), so that the
// script that deletes it declares its keys, module and name included; the script re-reads
// the record and deletes nothing if it is gone meanwhile.

// deleteArgs are the KEYS and ARGV of scriptDelete.
type deleteArgs struct{ f Function }

func (a deleteArgs) call(k keys) call {
	ns := nsField(a.f.Namespace)
	return call{
		keys: []string{k.function(a.f.ID), k.fname(ns, a.f.Name), k.functions(ns), k.usage(ns),
			k.modref(a.f.ModuleHash), k.module(a.f.ModuleHash)},
		argv: []any{a.f.ID, a.f.ModuleHash},
	}
}

// scriptDelete deletes a function.
//
//	KEYS[1]  function:<id>
//	KEYS[2]  <ns>fname:<name>
//	KEYS[3]  <ns>functions
//	KEYS[4]  <ns>usage
//	KEYS[5]  modref:<module hash>
//	KEYS[6]  module:<module hash>
//	ARGV[1]  id
//	ARGV[2]  module hash
//
// The name goes too if it pointed at this function (an older function of the same name is
// then reached by its id only). Returns -1 if the function is gone (deleted meanwhile),
// else 1 if its module was deleted too, 0 if not.
var scriptDelete = newScript(`
local fn_key, fname, functions, usage, modref, module = unpack(KEYS)
local id, hash = ARGV[1], ARGV[2]
local f = redis.call('HMGET', fn_key, 'module', 'size')
if f[1] ~= hash then return -1 end
redis.call('DEL', fn_key)
redis.call('ZREM', functions, id)
if redis.call('GET', fname) == id then redis.call('DEL', fname) end
redis.call('HINCRBY', usage, 'module_bytes', -(tonumber(f[2]) or 0))
redis.call('SREM', modref, id)
if redis.call('SCARD', modref) == 0 then
  redis.call('DEL', module)
  return 1
end
return 0
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
	if err := s.upgradeRefs(ctx); err != nil {
		return Deleted{}, err
	}
	f, err := s.lookupFunction(ctx, ns, idOrName)
	if err != nil {
		return Deleted{}, err
	}
	f.Namespace = ns
	res, err := s.eval(ctx, scriptDelete, deleteArgs{f: f}.call(s.k)).Int()
	if err != nil {
		return Deleted{}, redisErr("delete function", err)
	}
	if res < 0 {
		return Deleted{}, fmt.Errorf("store: function %q: %w", idOrName, ErrNotFound)
	}
	if _, ok := s.fns.LoadAndDelete(f.ID); ok {
		s.nfns.Add(-1)
	}
	d := Deleted{Function: Function{ID: f.ID, Name: f.Name, ModuleHash: f.ModuleHash, Namespace: ns},
		ModuleDeleted: res == 1}
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

// upgradeArgs are the KEYS and ARGV of scriptUpgradeRefs.
type upgradeArgs struct{ ids, modules []string }

func (a upgradeArgs) call(k keys) call {
	ks := []string{k.upgraded(), k.usage(DefaultNamespace)}
	argv := make([]any, 0, 2*len(a.ids))
	for i, id := range a.ids {
		ks = append(ks, k.function(id), k.modref(a.modules[i]))
		argv = append(argv, id)
	}
	return call{keys: ks, argv: argv}
}

// scriptUpgradeRefs gives the functions registered before modules were reference-counted
// (by a faas without namespaces: all in the default namespace, without an ns field) their
// place in their module's modref set and in the default namespace's module bytes, once
// (flag upgraded.modrefs). SADD tells an already counted function, so a second run changes
// nothing.
//
//	KEYS[1]  upgraded
//	KEYS[2]  usage of the default namespace
//	KEYS[3..] per function: function:<id>, modref:<its module>
//	ARGV     the functions' ids
var scriptUpgradeRefs = newScript(`
local upgraded, usage = KEYS[1], KEYS[2]
if redis.call('HEXISTS', upgraded, 'modrefs') == 1 then return 0 end
for i = 1, #ARGV do
  local fn_key, modref = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local f = redis.call('HMGET', fn_key, 'module', 'size', 'ns')
  if f[1] and not f[3] and redis.call('SADD', modref, ARGV[i]) == 1 then
    redis.call('HINCRBY', usage, 'module_bytes', tonumber(f[2]) or 0)
  end
end
redis.call('HSET', upgraded, 'modrefs', '1')
return 1
`)

// upgradeRefs runs scriptUpgradeRefs over the default namespace's functions unless it ran
// before. Deletion calls it first, so that it never deletes a module an older function
// still uses. The functions are read first (their modules name the keys to declare); a
// function deleted in between is skipped by the script (no record).
func (s *Store) upgradeRefs(ctx context.Context) error {
	done, err := s.rdb.HExists(ctx, s.k.upgraded(), "modrefs").Result()
	if err != nil || done {
		return redisErr("delete function", err)
	}
	ids, err := s.rdb.ZRange(ctx, s.k.functions(DefaultNamespace), 0, -1).Result()
	if err != nil {
		return redisErr("delete function", err)
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, s.k.function(id), ffModule)
		}
		return nil
	})
	if err != nil && !isNil(err) {
		return redisErr("delete function", err)
	}
	var a upgradeArgs
	for i, c := range cmds {
		if m := c.Val(); m != "" {
			a.ids, a.modules = append(a.ids, ids[i]), append(a.modules, m)
		}
	}
	return redisErr("delete function", s.eval(ctx, scriptUpgradeRefs, a.call(s.k)).Err())
}

// isNil reports a pipeline's redis.Nil (a field that was absent), which is no failure.
func isNil(err error) bool { return errors.Is(err, redis.Nil) }
