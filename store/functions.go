package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Modules and functions: modules are content-addressed and shared by every function (of
// any namespace) that uses them, and deleted with the last; functions are immutable records
// of one namespace pointing at a module, found by id or by (newest) name in the namespace.

// PutModule stores wasm under its hash once (SET NX); the same bytes again are a no-op.
// Register does this and CreateFunction in one script; a module stored by PutModule alone
// is not deleted by DeleteFunction until a function used it.
func (s *Store) PutModule(ctx context.Context, hash string, wasm []byte) error {
	return redisErr("put module", s.rdb.SetNX(ctx, s.k.module(hash), wasm, 0).Err())
}

// Module returns a module's bytes, ErrNotFound if absent.
func (s *Store) Module(ctx context.Context, hash string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.k.module(hash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: module %s: %w", hash, ErrNotFound)
	}
	if err != nil {
		return nil, redisErr("module", err)
	}
	return b, nil
}

// hasModule reports whether a module is stored.
func (s *Store) hasModule(ctx context.Context, hash string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.k.module(hash)).Result()
	return n == 1, redisErr("has module", err)
}

// CreateFunction stores f (ID, Name, ModuleHash set by the caller; its module stored by
// PutModule) and points f.Name at it in f's namespace. A zero CreatedAt is set to now. It is
// one script (one round trip).
func (s *Store) CreateFunction(ctx context.Context, f Function) error {
	return s.create(ctx, f, nil, 0)
}

// Register stores wasm (once per hash) and f in one script, so that a module never exists
// without a function that uses it. With maxModuleBytes > 0, a namespace whose functions'
// modules would then weigh more than that gets an error wrapping ErrQuota, and nothing is
// stored.
func (s *Store) Register(ctx context.Context, f Function, wasm []byte, maxModuleBytes int64) error {
	if wasm == nil {
		wasm = []byte{}
	}
	return s.create(ctx, f, wasm, maxModuleBytes)
}

// createArgs are the KEYS and ARGV of scriptCreate.
type createArgs struct {
	f        Function
	limits   []byte
	wasm     []byte // nil: stored already by PutModule
	maxBytes int64
}

func (a createArgs) call(k keys) call {
	ns := nsField(a.f.Namespace)
	abi := a.f.ABI
	if abi == ABICommand {
		abi = "" // the default: no field written
	}
	hasWasm := 0
	wasm := []byte{}
	if a.wasm != nil {
		hasWasm, wasm = 1, a.wasm
	}
	return call{
		keys: []string{k.function(a.f.ID), k.fname(ns, a.f.Name), k.functions(ns),
			k.module(a.f.ModuleHash), k.modref(a.f.ModuleHash), k.usage(ns)},
		argv: []any{a.f.ID, a.f.Name, a.f.ModuleHash, a.f.ModuleSize, a.limits,
			a.f.CreatedAt.UnixMilli(), ns, a.maxBytes, hasWasm, wasm, abi},
	}
}

// scriptCreate stores a function (and its module, when given).
//
//	KEYS[1]  function:<id>
//	KEYS[2]  <ns>fname:<name>
//	KEYS[3]  <ns>functions
//	KEYS[4]  module:<hash>
//	KEYS[5]  modref:<hash>
//	KEYS[6]  <ns>usage
//	ARGV[1..6]  id, name, module hash, module size, limits (JSON), created (ms)
//	ARGV[7]  namespace ("" for the default: no field written)
//	ARGV[8]  most module bytes of the namespace (0: no bound)
//	ARGV[9]  1 if ARGV[10] is the module to store (SET NX)
//	ARGV[10] the module's bytes
//	ARGV[11] the ABI when not "command" ("" : no field written)
//
// Returns -1 when the quota refuses (nothing written), else the namespace's module bytes.
var scriptCreate = newScript(`
local fn_key, fname, functions, module, modref, usage = unpack(KEYS)
local id, name, hash, size, limits, created, ns, max_bytes, has_wasm =
  ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
local used = tonumber(redis.call('HGET', usage, 'module_bytes')) or 0
if max_bytes > 0 and used + size > max_bytes then return -1 end
if has_wasm == '1' then redis.call('SET', module, ARGV[10], 'NX') end
redis.call('HSET', fn_key, 'id', id, 'name', name, 'module', hash, 'size', ARGV[4],
  'limits', limits, 'created', created)
if ns ~= '' then redis.call('HSET', fn_key, 'ns', ns) end
if ARGV[11] ~= '' then redis.call('HSET', fn_key, 'abi', ARGV[11]) end
redis.call('SET', fname, id)
redis.call('ZADD', functions, created, id)
redis.call('SADD', modref, id)
return redis.call('HINCRBY', usage, 'module_bytes', size)
`)

func (s *Store) create(ctx context.Context, f Function, wasm []byte, maxBytes int64) error {
	if f.ID == "" || f.Name == "" || f.ModuleHash == "" {
		return fmt.Errorf("store: create function: id, name and module hash are required")
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	f.Namespace = nsOrDefault(f.Namespace)
	f.Limits = f.Limits.WithDefaults()
	switch f.ABI {
	case "":
		f.ABI = ABICommand
	case ABICommand, ABIReactor:
	default:
		return fmt.Errorf("store: create function: unknown ABI %q", f.ABI)
	}
	lim, err := json.Marshal(f.Limits)
	if err != nil {
		return fmt.Errorf("store: create function: %w", err)
	}
	f.CreatedAt = time.UnixMilli(f.CreatedAt.UnixMilli())
	a := createArgs{f: f, limits: lim, wasm: wasm, maxBytes: maxBytes}
	used, err := s.eval(ctx, scriptCreate, a.call(s.k)).Int64()
	if err != nil {
		return redisErr("create function", err)
	}
	if used < 0 {
		return fmt.Errorf("store: namespace %s: its modules would exceed %d bytes: %w", f.Namespace, maxBytes, ErrQuota)
	}
	s.cacheFunction(f)
	return nil
}

func (s *Store) cacheFunction(f Function) {
	if _, loaded := s.fns.LoadOrStore(f.ID, f); !loaded {
		if s.nfns.Add(1) > s.maxFns {
			s.fns.Clear()
			s.nfns.Store(0)
		}
	}
}

// functionArgs are the KEYS and ARGV of scriptFunction.
type functionArgs struct{ ns, idOrName string }

func (a functionArgs) call(k keys) call {
	ns := nsField(a.ns)
	return call{keys: []string{k.function(a.idOrName), k.fname(ns, a.idOrName)}, argv: []any{ns}}
}

// scriptFunction reads a function of a namespace by id or, failing that, the id its name
// points at, in one round trip.
//
//	KEYS[1]  function:<idOrName>
//	KEYS[2]  <ns>fname:<idOrName>
//	ARGV[1]  namespace ("" for the default)
//
// Returns {1, HGETALL of the function} when idOrName is the id of a function of the
// namespace, else {0, the id the name points at} ({0} if none); the caller reads that
// function (its key could not be declared before).
var scriptFunction = newScript(`
local by_id, by_name, ns = KEYS[1], KEYS[2], ARGV[1]
if redis.call('EXISTS', by_id) == 1 and (redis.call('HGET', by_id, 'ns') or '') == ns then
  return {1, redis.call('HGETALL', by_id)}
end
local id = redis.call('GET', by_name)
if not id then return {0} end
return {0, id}
`)

// Function returns a function of the default namespace by id or name; see FunctionIn.
func (s *Store) Function(ctx context.Context, idOrName string) (Function, error) {
	return s.FunctionIn(ctx, DefaultNamespace, idOrName)
}

// FunctionIn returns a function of namespace ns by id, or by name (the newest with that
// name in ns). ErrNotFound if none, or if the id is another namespace's. A lookup by id is
// served from memory once seen (functions are immutable); one by name costs a second round
// trip (the function's key is only known from the name's).
func (s *Store) FunctionIn(ctx context.Context, ns, idOrName string) (Function, error) {
	ns = nsOrDefault(ns)
	if v, ok := s.fns.Load(idOrName); ok && v.(Function).Namespace == ns {
		return v.(Function), nil
	}
	f, err := s.lookupFunction(ctx, ns, idOrName)
	if err != nil {
		return Function{}, err
	}
	s.cacheFunction(f)
	return f, nil
}

// lookupFunction reads a function of namespace ns by id or name from Redis.
func (s *Store) lookupFunction(ctx context.Context, ns, idOrName string) (Function, error) {
	res, err := s.eval(ctx, scriptFunction, functionArgs{ns: ns, idOrName: idOrName}.call(s.k)).Slice()
	if err != nil {
		return Function{}, redisErr("function", err)
	}
	var m map[string]string
	switch {
	case len(res) == 2 && num(res[0]) == 1:
		flat, _ := res[1].([]any)
		m = make(map[string]string, len(flat)/2)
		for i := 0; i+1 < len(flat); i += 2 {
			m[str(flat[i])] = str(flat[i+1])
		}
	case len(res) == 2:
		m, err = s.rdb.HGetAll(ctx, s.k.function(str(res[1]))).Result()
		if err != nil {
			return Function{}, redisErr("function", err)
		}
		if nsOrDefault(m[ffNS]) != ns {
			m = nil // a name never points at another namespace's function; be sure
		}
	}
	if len(m) == 0 {
		return Function{}, fmt.Errorf("store: function %q: %w", idOrName, ErrNotFound)
	}
	return parseFunction(m)
}

func parseFunction(m map[string]string) (Function, error) {
	f := Function{ID: m[ffID], Name: m[ffName], ModuleHash: m[ffModule], Namespace: nsOrDefault(m[ffNS]), ABI: m[ffABI]}
	if f.ABI == "" {
		f.ABI = ABICommand
	}
	if f.ID == "" {
		return Function{}, fmt.Errorf("store: function record without id")
	}
	f.ModuleSize, _ = strconv.ParseInt(m[ffSize], 10, 64)
	if ms, err := strconv.ParseInt(m[ffCreated], 10, 64); err == nil {
		f.CreatedAt = time.UnixMilli(ms)
	}
	lim, err := parseLimits(m[ffLimits])
	if err != nil {
		return Function{}, fmt.Errorf("store: function %s: %w", f.ID, err)
	}
	f.Limits = lim
	return f, nil
}

func parseLimits(s string) (task.Limits, error) {
	var l task.Limits
	if s != "" {
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			return l, fmt.Errorf("bad limits %q: %w", s, err)
		}
	}
	return l.WithDefaults(), nil
}

// Functions lists the default namespace's functions; see FunctionsIn.
func (s *Store) Functions(ctx context.Context) ([]Function, error) {
	return s.FunctionsIn(ctx, DefaultNamespace)
}

// FunctionsIn lists every function of namespace ns, newest first (two round trips).
func (s *Store) FunctionsIn(ctx context.Context, ns string) ([]Function, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.k.functions(ns), 0, -1).Result()
	if err != nil {
		return nil, redisErr("functions", err)
	}
	if len(ids) == 0 {
		return []Function{}, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.k.function(id))
		}
		return nil
	})
	if err != nil {
		return nil, redisErr("functions", err)
	}
	out := make([]Function, 0, len(ids))
	for _, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			continue
		}
		f, err := parseFunction(m)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}
