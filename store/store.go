package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Defaults of Config.
const (
	DefaultTaskTTL     = 24 * time.Hour
	DefaultLeaseTTL    = 15 * time.Second
	DefaultMaxAttempts = 3
	DefaultPrefix      = "faas:"
)

// recoverBatch bounds the leases one RecoverExpired script examines, so that one call
// never blocks Redis for long; RecoverExpired loops while batches come back full.
const recoverBatch = 1000

// Store is the Redis data model. Safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
	k   keys

	// fns caches functions by id: functions are immutable, so a cached one is never stale.
	fns    sync.Map // id → Function
	nfns   atomic.Int64
	maxFns int64
}

// New returns a store on rdb. It does not own rdb (the caller closes it).
//
// On a Redis Cluster client, a prefix without a hash tag gets one ("faas:" becomes
// "{faas}:") so that every key of the store lives in one slot, which the scripts need.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	cfg = cfg.withDefaults()
	if _, ok := rdb.(*redis.ClusterClient); ok && !strings.Contains(cfg.Prefix, "{") {
		cfg.Prefix = "{" + strings.TrimSuffix(cfg.Prefix, ":") + "}:"
	}
	return &Store{rdb: rdb, cfg: cfg, k: keys{prefix: cfg.Prefix}, maxFns: 4096}
}

func (c Config) withDefaults() Config {
	if c.TaskTTL <= 0 {
		c.TaskTTL = DefaultTaskTTL
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	return c
}

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

// Client returns the Redis client the store uses.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// DoneChannel is the channel that carries ids of tasks that became terminal.
func (s *Store) DoneChannel() string { return s.k.doneChannel() }

// Ping checks Redis is reachable (ErrUnavailable otherwise).
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", s.rdb.Ping(ctx).Err())
}

// PutModule stores wasm under its hash once (SET NX); the same bytes again are a no-op.
// Modules are kept forever: they are content-addressed and shared by functions.
func (s *Store) PutModule(ctx context.Context, hash string, wasm []byte) error {
	return wrap("put module", s.rdb.SetNX(ctx, s.k.module(hash), wasm, 0).Err())
}

// Module returns a module's bytes, ErrNotFound if absent.
func (s *Store) Module(ctx context.Context, hash string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.k.module(hash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: module %s: %w", hash, ErrNotFound)
	}
	if err != nil {
		return nil, wrap("module", err)
	}
	return b, nil
}

// HasModule reports whether a module is stored.
func (s *Store) HasModule(ctx context.Context, hash string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.k.module(hash)).Result()
	return n == 1, wrap("has module", err)
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
		return wrap("create function", err)
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

// Function returns a function by id, or by name (the newest with that name). ErrNotFound if none.
// A lookup by id is served from memory once seen (functions are immutable).
func (s *Store) Function(ctx context.Context, idOrName string) (Function, error) {
	if v, ok := s.fns.Load(idOrName); ok {
		return v.(Function), nil
	}
	res, err := scriptFunction.Run(ctx, s.rdb,
		[]string{s.k.function(idOrName), s.k.fname(idOrName)}, s.k.functionPrefix()).Slice()
	if err != nil {
		return Function{}, wrap("function", err)
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
		return nil, wrap("functions", err)
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
		return nil, wrap("functions", err)
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
	args := make([]any, 0, 3+2*len(inputs))
	args = append(args, s.k.taskPrefix(), fn.ID, s.k.tasksChannel())
	for i, in := range inputs {
		ids[i] = uuid.NewString()
		if in == nil {
			in = []byte{}
		}
		args = append(args, ids[i], in)
	}
	if err := scriptSubmit.Run(ctx, s.rdb, []string{s.k.queue()}, args...).Err(); err != nil {
		return nil, wrap("submit", err)
	}
	return ids, nil
}

// recordFields are read by Task and Tasks, in this order (never the input).
var recordFields = []string{fStatus, fFunctionID, fResult, fErrKind, fErrMsg, fStderr,
	fAttempts, fWorker, fCreated, fStarted, fFinished, fDurationMs}

// Task returns a task's record (without its input). ErrNotFound if unknown or expired.
func (s *Store) Task(ctx context.Context, id string) (Record, error) {
	vals, err := s.rdb.HMGet(ctx, s.k.task(id), recordFields...).Result()
	if err != nil {
		return Record{}, wrap("task", err)
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
		return nil, wrap("tasks", err)
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
	return r
}

// Claim takes up to n tasks from the queue for owner (a dispatcher identity), marks them
// RUNNING with attempt+1 and a lease of LeaseTTL, and returns them with everything an
// executor needs (module hash, name, limits, input), in one round trip. It returns an empty
// slice, not an error, when the queue is empty.
func (s *Store) Claim(ctx context.Context, owner string, n int) ([]task.Task, error) {
	if n <= 0 {
		return []task.Task{}, nil
	}
	res, err := scriptClaim.Run(ctx, s.rdb, []string{s.k.queue(), s.k.leases()},
		s.k.taskPrefix(), s.k.functionPrefix(), n, owner,
		s.cfg.LeaseTTL.Milliseconds(), s.cfg.TaskTTL.Milliseconds(), s.k.doneChannel()).Slice()
	if err != nil {
		return nil, wrap("claim", err)
	}
	if len(res) < 3 {
		return nil, fmt.Errorf("store: claim: unexpected reply %v", res)
	}
	flat, _ := res[1].([]any)
	fnFlat, _ := res[2].([]any)
	type fnInfo struct {
		name, module string
		limits       task.Limits
	}
	fns := make(map[string]fnInfo, len(fnFlat)/4)
	for i := 0; i+3 < len(fnFlat); i += 4 {
		fid := str(fnFlat[i])
		info := fnInfo{name: str(fnFlat[i+1]), module: str(fnFlat[i+2])}
		if v, ok := s.fns.Load(fid); ok {
			info.limits = v.(Function).Limits
		} else {
			lim, err := parseLimits(str(fnFlat[i+3]))
			if err != nil {
				lim = task.DefaultLimits() // never lose a claimed task over a bad record
			}
			info.limits = lim
		}
		fns[fid] = info
	}
	out := make([]task.Task, 0, len(flat)/4)
	for i := 0; i+3 < len(flat); i += 4 {
		fid := str(flat[i+1])
		info := fns[fid]
		out = append(out, task.Task{
			ID:         str(flat[i]),
			FunctionID: fid,
			Name:       info.name,
			ModuleHash: info.module,
			Input:      []byte(str(flat[i+2])),
			Limits:     info.limits,
			Attempt:    int(num(flat[i+3])),
		})
	}
	return out, nil
}

// SetWorker records which worker runs a claimed task (for the record and for tests that
// measure capacity). Best effort, may be pipelined by the caller's batching.
func (s *Store) SetWorker(ctx context.Context, refs []task.Ref, worker string) error {
	if len(refs) == 0 {
		return nil
	}
	args := make([]any, 0, 2+2*len(refs))
	args = append(args, s.k.taskPrefix(), worker)
	args = appendRefs(args, refs)
	return wrap("set worker", scriptSetWorker.Run(ctx, s.rdb, nil, args...).Err())
}

func appendRefs(args []any, refs []task.Ref) []any {
	for _, r := range refs {
		args = append(args, r.ID, r.Attempt)
	}
	return args
}

// Complete records outcomes in one round trip: for each, only if the task is RUNNING at that
// same attempt does it become COMPLETED/FAILED (first terminal state wins); the lease is
// dropped, the record gets TaskTTL, and waiters are woken on "faas:done". It returns how
// many outcomes were applied (the rest were late or duplicates).
func (s *Store) Complete(ctx context.Context, outcomes []task.Outcome) (int, error) {
	if len(outcomes) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 3+9*len(outcomes))
	args = append(args, s.k.taskPrefix(), s.cfg.TaskTTL.Milliseconds(), s.k.doneChannel())
	for _, o := range outcomes {
		var kind, msg string
		stdout := o.Stdout
		if o.Failure != nil {
			kind, msg = string(o.Failure.Kind), o.Failure.Message
			stdout = nil
		}
		args = append(args, o.ID, o.Attempt, string(o.Status()), nonNil(stdout), kind, msg,
			nonNil(o.Stderr), o.Duration.Milliseconds(), o.Worker)
	}
	n, err := scriptComplete.Run(ctx, s.rdb, []string{s.k.leases()}, args...).Int()
	if err != nil {
		return 0, wrap("complete", err)
	}
	return n, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Renew extends the leases of refs to now+LeaseTTL, in one round trip.
func (s *Store) Renew(ctx context.Context, refs []task.Ref) error {
	_, err := s.RenewLost(ctx, refs)
	return err
}

// RenewLost is Renew that also returns the ids whose lease could not be renewed because
// the task is no longer RUNNING at that attempt (finished, re-queued after its lease
// expired, or expired): whoever runs them should stop, their result would be ignored.
func (s *Store) RenewLost(ctx context.Context, refs []task.Ref) ([]string, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 2+2*len(refs))
	args = append(args, s.k.taskPrefix(), s.cfg.LeaseTTL.Milliseconds())
	args = appendRefs(args, refs)
	lost, err := scriptRenew.Run(ctx, s.rdb, []string{s.k.leases()}, args...).StringSlice()
	if err != nil {
		return nil, wrap("renew", err)
	}
	return lost, nil
}

// Requeue puts back tasks whose worker was lost: each still RUNNING at that attempt goes back
// to the queue (QUEUED) if attempts < MaxAttempts, else becomes FAILED kind worker_lost.
func (s *Store) Requeue(ctx context.Context, refs []task.Ref, reason string) error {
	_, _, err := s.RequeueCount(ctx, refs, reason)
	return err
}

// RequeueCount is Requeue that reports how many tasks went back to the queue and how many
// became FAILED (worker_lost).
func (s *Store) RequeueCount(ctx context.Context, refs []task.Ref, reason string) (requeued, failed int, err error) {
	if len(refs) == 0 {
		return 0, 0, nil
	}
	if reason == "" {
		reason = "worker lost"
	}
	args := make([]any, 0, 6+2*len(refs))
	args = append(args, s.k.taskPrefix(), s.cfg.MaxAttempts, s.cfg.TaskTTL.Milliseconds(),
		s.k.doneChannel(), s.k.tasksChannel(), reason)
	args = appendRefs(args, refs)
	res, err := scriptRequeue.Run(ctx, s.rdb, []string{s.k.queue(), s.k.leases()}, args...).Int64Slice()
	if err != nil {
		return 0, 0, wrap("requeue", err)
	}
	return int(res[0]), int(res[1]), nil
}

// Release hands back tasks never started (graceful shutdown): back to the queue's head
// with the attempt not counted. Refs are given in claim order; they are put back so that
// they are claimed again in that order.
func (s *Store) Release(ctx context.Context, refs []task.Ref) error {
	if len(refs) == 0 {
		return nil
	}
	args := make([]any, 0, 2+2*len(refs))
	args = append(args, s.k.taskPrefix(), s.k.tasksChannel())
	args = appendRefs(args, refs)
	return wrap("release", scriptRelease.Run(ctx, s.rdb, []string{s.k.queue(), s.k.leases()}, args...).Err())
}

// RecoverExpired requeues (as Requeue does) every task whose lease ended before now.
// Any dispatcher may run it; the script makes it safe to run concurrently. Returns how many.
//
// After an outage it waits: when no recovery ran in Redis for LeaseTTL/2 (Redis was paused,
// restarting or unreachable from every dispatcher, or no dispatcher ran), it recovers nothing
// for one LeaseTTL, so that live dispatchers renew the leases that expired meanwhile instead
// of having their running tasks re-queued and charged an attempt (see scriptRecover).
func (s *Store) RecoverExpired(ctx context.Context) (int, error) {
	total := 0
	for range 100 { // at most 100 batches per call; the next call carries on
		res, err := scriptRecover.Run(ctx, s.rdb, []string{s.k.queue(), s.k.leases(), s.k.recoverer()},
			s.k.taskPrefix(), s.cfg.MaxAttempts, s.cfg.TaskTTL.Milliseconds(),
			s.k.doneChannel(), s.k.tasksChannel(), recoverBatch,
			(s.cfg.LeaseTTL / 2).Milliseconds(), s.cfg.LeaseTTL.Milliseconds()).Int64Slice()
		if err != nil {
			return total, wrap("recover expired", err)
		}
		total += int(res[0] + res[1])
		if res[2] < recoverBatch {
			break
		}
	}
	return total, nil
}

// RequeueOwner requeues (as Requeue does, attempt charged) every RUNNING task claimed by
// owner, whatever its attempt: for a dispatcher that restarts under a stable identity (after
// a crash) to take back at once what its previous run held, instead of waiting LeaseTTL.
// Only call it with an identity no live process uses. Returns how many tasks moved.
func (s *Store) RequeueOwner(ctx context.Context, owner, reason string) (int, error) {
	if reason == "" {
		reason = "dispatcher " + owner + " restarted"
	}
	res, err := scriptRequeueOwner.Run(ctx, s.rdb, []string{s.k.queue(), s.k.leases()},
		s.k.taskPrefix(), s.cfg.MaxAttempts, s.cfg.TaskTTL.Milliseconds(),
		s.k.doneChannel(), s.k.tasksChannel(), owner, reason).Int64Slice()
	if err != nil {
		return 0, wrap("requeue owner", err)
	}
	return int(res[0] + res[1]), nil
}

// ReleaseStrays hands back (as Release does: attempt not charged, run next) every task
// leased to owner whose id is not in held: tasks taken by a Claim whose answer never reached
// owner. Call it only while no Claim of owner is in flight, with every id owner holds.
// O(leases). Returns how many tasks went back.
func (s *Store) ReleaseStrays(ctx context.Context, owner string, held []string) (int, error) {
	args := make([]any, 0, 3+len(held))
	args = append(args, s.k.taskPrefix(), s.k.tasksChannel(), owner)
	for _, id := range held {
		args = append(args, id)
	}
	n, err := scriptReleaseStrays.Run(ctx, s.rdb, []string{s.k.queue(), s.k.leases()}, args...).Int()
	if err != nil {
		return 0, wrap("release strays", err)
	}
	return n, nil
}

// QueueLen is the number of QUEUED tasks waiting.
func (s *Store) QueueLen(ctx context.Context) (int64, error) {
	n, err := s.rdb.LLen(ctx, s.k.queue()).Result()
	return n, wrap("queue length", err)
}

// LeaseCount is the number of tasks holding a lease (RUNNING).
func (s *Store) LeaseCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.k.leases()).Result()
	return n, wrap("lease count", err)
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			f, _ := strconv.ParseFloat(x, 64)
			return int64(f)
		}
		return n
	default:
		return 0
	}
}

func msTime(v any) time.Time {
	ms := num(v)
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
