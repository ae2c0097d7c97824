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

// Modules and functions: modules are content-addressed and kept forever; functions are
// immutable records pointing at a module, found by id or by (newest) name.

// PutModule stores wasm under its hash once (SET NX); the same bytes again are a no-op.
// Modules are kept forever: they are content-addressed and shared by functions.
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

// CreateFunction stores f (ID, Name, ModuleHash set by the caller) and points f.Name at it.
// A zero CreatedAt is set to now. It is one MULTI/EXEC round trip.
func (s *Store) CreateFunction(ctx context.Context, f Function) error {
	if f.ID == "" || f.Name == "" || f.ModuleHash == "" {
		return fmt.Errorf("store: create function: id, name and module hash are required")
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	f.Limits = f.Limits.WithDefaults()
	lim, err := json.Marshal(f.Limits)
	if err != nil {
		return fmt.Errorf("store: create function: %w", err)
	}
	ms := f.CreatedAt.UnixMilli()
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.k.function(f.ID), ffID, f.ID, ffName, f.Name, ffModule, f.ModuleHash,
			ffSize, f.ModuleSize, ffLimits, lim, ffCreated, ms)
		p.Set(ctx, s.k.fname(f.Name), f.ID, 0)
		p.ZAdd(ctx, s.k.functions(), redis.Z{Score: float64(ms), Member: f.ID})
		return nil
	})
	if err != nil {
		return redisErr("create function", err)
	}
	f.CreatedAt = time.UnixMilli(ms)
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
type functionArgs struct{ idOrName string }

func (a functionArgs) call(k keys) call {
	return call{
		keys: []string{k.function(a.idOrName), k.fname(a.idOrName)},
		argv: []any{k.functionPrefix()},
	}
}

// scriptFunction reads a function by id, or else by name, in one round trip.
//
//	KEYS[1]  function:<idOrName>
//	KEYS[2]  fname:<idOrName>
//	ARGV[1]  function key prefix
//
// Returns HGETALL of the function, empty if none.
var scriptFunction = redis.NewScript(`
local by_id, by_name = KEYS[1], KEYS[2]
local fn_prefix = ARGV[1]
local f = redis.call('HGETALL', by_id)
if #f > 0 then return f end
local id = redis.call('GET', by_name)
if not id then return {} end
return redis.call('HGETALL', fn_prefix .. id)
`)

// Function returns a function by id, or by name (the newest with that name). ErrNotFound if none.
// A lookup by id is served from memory once seen (functions are immutable).
func (s *Store) Function(ctx context.Context, idOrName string) (Function, error) {
	if v, ok := s.fns.Load(idOrName); ok {
		return v.(Function), nil
	}
	res, err := s.eval(ctx, scriptFunction, functionArgs{idOrName: idOrName}.call(s.k)).Slice()
	if err != nil {
		return Function{}, redisErr("function", err)
	}
	if len(res) == 0 {
		return Function{}, fmt.Errorf("store: function %q: %w", idOrName, ErrNotFound)
	}
	m := make(map[string]string, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		m[str(res[i])] = str(res[i+1])
	}
	f, err := parseFunction(m)
	if err != nil {
		return Function{}, err
	}
	s.cacheFunction(f)
	return f, nil
}

func parseFunction(m map[string]string) (Function, error) {
	f := Function{ID: m[ffID], Name: m[ffName], ModuleHash: m[ffModule]}
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

// Functions lists every function, newest first (two round trips).
func (s *Store) Functions(ctx context.Context) ([]Function, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.k.functions(), 0, -1).Result()
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
