// Package server is the REST API of faas: the four routes of the contract
// (register_function, execute_function, status, result), plus batch submission, waiting for
// many tasks, function listing, function logs (logs.go), the live dispatchers and workers
// (live.go), a health check and Prometheus metrics (metrics.go). See docs/API.md.
//
// Handlers are kept lean on purpose: answers on the hot paths are appended by hand (no
// reflection), functions are cached by id in process (they are immutable), and waiting
// for a task never polls Redis — it is woken by the store's shared Done subscription.
// Concurrent single submits and task reads are coalesced (coalesce.go): under load one
// Redis round trip serves many requests, and an idle server adds no delay.
// Every error goes through one table (errors.go) mapping it to a status and a stable code.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"faas/internal/metrics"
	"faas/internal/ui"
	"faas/sandbox"
	"faas/store"
	"faas/task"
)

// Config tunes the server. Every zero value means the documented default.
type Config struct {
	// MaxLimits caps what a registration may ask for; a zero field means that field of
	// task.MaxLimits() (300 s, 1024 MiB, 64 MiB, 64 MiB).
	MaxLimits task.Limits
	// MaxModuleBytes is the largest module accepted (413 beyond). Default 32 MiB.
	MaxModuleBytes int64
	// MaxWait caps ?wait= of /result and "wait" of /wait. Default 30 s.
	MaxWait time.Duration
	// MaxBatch is the most inputs (or task ids for /wait) per request. Default 10000.
	MaxBatch int
	// MaxBatchBytes is the most input bytes (decoded) per /execute_batch. Default 64 MiB.
	MaxBatchBytes int64
	// MaxInflightBodyBytes bounds the request body bytes held at once by all requests in
	// flight; beyond it a request is answered 503 with Retry-After. Bytes beyond the first
	// 64 KiB of a body may use only 3/4 of it, the rest is kept for small requests.
	// Default 256 MiB.
	MaxInflightBodyBytes int64
	// MaxInflightResultBytes bounds the stored bytes of task outputs (result and stderr)
	// being answered at once by /result and /wait; a /result beyond it is answered 503 with
	// Retry-After, and /wait omits what does not fit. Answering costs about 3.4 times the
	// stored bytes in memory. One output larger than the whole budget is still answered
	// when nothing else is. Default 128 MiB.
	MaxInflightResultBytes int64
	// MaxWaitResultBytes bounds the output bytes one /wait answer carries; the tasks whose
	// outputs do not fit come with "result_omitted": true, for the client to fetch one by
	// one from /result. Default 8 MiB.
	MaxWaitResultBytes int64
	// Metrics is the registry the server registers its metrics on and serves at
	// GET /metrics; pass one to serve other components' metrics (a dispatcher's, the Go
	// runtime's) beside them. Default (nil): a fresh registry holding the server's only.
	Metrics *prometheus.Registry
	// Keys maps API keys to namespaces (see SetKeys). Nil: no keys; every request is in
	// the default namespace.
	Keys *KeyRing
	// CORSOrigin is the one origin browsers may call the API from ("" sends no CORS
	// headers, so browsers refuse cross-origin answers; "*" allows any).
	CORSOrigin string
	// MaxLogFollowers bounds the clients following function logs at once (503 beyond);
	// MaxLogFollowersPerNamespace those of one namespace (429 beyond). Each follower holds
	// a pooled Redis connection while it waits. Defaults 8 and 4.
	MaxLogFollowers             int
	MaxLogFollowersPerNamespace int
	// DefaultQuota is the quota of a namespace without a key ring (the default namespace);
	// with one, each namespace's quota comes from the ring.
	DefaultQuota Quota
}

// Defaults of Config.
const (
	DefaultMaxModuleBytes = 32 << 20
	DefaultMaxWait        = 30 * time.Second
	DefaultMaxBatch       = 10_000
	DefaultMaxBatchBytes  = 64 << 20

	DefaultMaxInflightBodyBytes   = 256 << 20
	DefaultMaxInflightResultBytes = 128 << 20
	DefaultMaxWaitResultBytes     = 8 << 20
)

func (c Config) withDefaults() Config {
	m := task.MaxLimits()
	if c.MaxLimits.TimeoutMs <= 0 {
		c.MaxLimits.TimeoutMs = m.TimeoutMs
	}
	if c.MaxLimits.MemoryMB <= 0 {
		c.MaxLimits.MemoryMB = m.MemoryMB
	}
	if c.MaxLimits.StdoutBytes <= 0 {
		c.MaxLimits.StdoutBytes = m.StdoutBytes
	}
	if c.MaxLimits.StdinBytes <= 0 {
		c.MaxLimits.StdinBytes = m.StdinBytes
	}
	if c.MaxModuleBytes <= 0 {
		c.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if c.MaxWait <= 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxInflightBodyBytes <= 0 {
		c.MaxInflightBodyBytes = DefaultMaxInflightBodyBytes
	}
	if c.MaxInflightResultBytes <= 0 {
		c.MaxInflightResultBytes = DefaultMaxInflightResultBytes
	}
	if c.MaxWaitResultBytes <= 0 {
		c.MaxWaitResultBytes = DefaultMaxWaitResultBytes
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
	if c.MaxLogFollowers <= 0 {
		c.MaxLogFollowers = DefaultMaxLogFollowers
	}
	if c.MaxLogFollowersPerNamespace <= 0 {
		c.MaxLogFollowersPerNamespace = DefaultMaxLogFollowersPerNamespace
	}
	return c
}

// Server serves the REST API. Create it with New.
type Server struct {
	st   *store.Store
	sb   *sandbox.Sandbox
	done *store.Done
	cfg  Config
	log  *slog.Logger
	m    *serverMetrics

	bodies  *memBudget // request body bytes held (budget.go)
	outputs *memBudget // stored output bytes being answered (budget.go)
	fns     fnCache
	keys    atomic.Pointer[KeyRing]
	rates   buckets
	submits coalescer[submitReq, submitResp] // concurrent /execute_function → one Submit
	reads   coalescer[string, store.Record]  // concurrent task reads → one pipeline
	handler http.Handler
	// logFollowers counts the clients following function logs (logs.go).
	logFollowers followers
	stopOnce     sync.Once
	stopping     chan struct{} // closed when Serve's context ends: long polls answer at once
}

// New returns a server on st, validating modules with sb. done wakes waiting requests; the
// caller runs done.Run (the server does not). A nil done makes ?wait= answer at once. A nil
// log means slog.Default(). New panics if cfg.Metrics already holds a metric of the same
// name as one of the server's but with other labels.
func New(st *store.Store, sb *sandbox.Sandbox, done *store.Done, cfg Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		st: st, sb: sb, done: done, cfg: cfg.withDefaults(), log: log,
		fns:      fnCache{max: 4096},
		stopping: make(chan struct{}),
	}
	s.bodies = &memBudget{max: s.cfg.MaxInflightBodyBytes}
	s.outputs = &memBudget{max: s.cfg.MaxInflightResultBytes}
	s.m = newServerMetrics(s.cfg.Metrics, st)
	s.submits = coalescer[submitReq, submitResp]{max: 512, run: s.submitBatch}
	s.reads = coalescer[string, store.Record]{max: 512, run: s.readBatch}
	s.keys.Store(cfg.Keys)
	s.handler = s.routes()
	return s
}

func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	// Each route is counted and timed under its template: bounded labels.
	handle := func(path, method string, h http.Handler) {
		r.Handle(path, s.m.instrument(path, s.recovering(s.budgeted(h)))).Methods(method)
	}
	handle("/register_function", http.MethodPost, http.HandlerFunc(s.register))
	handle("/execute_function", http.MethodPost, http.HandlerFunc(s.execute))
	handle("/execute_batch", http.MethodPost, http.HandlerFunc(s.executeBatch))
	handle("/status/{task_id}", http.MethodGet, http.HandlerFunc(s.status))
	handle("/result/{task_id}", http.MethodGet, http.HandlerFunc(s.result))
	handle("/wait", http.MethodPost, http.HandlerFunc(s.wait))
	handle("/tasks/{task_id}/cancel", http.MethodPost, http.HandlerFunc(s.cancelTask))
	handle("/tasks/cancel", http.MethodPost, http.HandlerFunc(s.cancelTasks))
	handle("/tasks/{task_id}/input", http.MethodGet, http.HandlerFunc(s.taskInput))
	handle("/functions", http.MethodGet, http.HandlerFunc(s.functions))
	handle("/functions/{id_or_name}", http.MethodGet, http.HandlerFunc(s.function))
	handle("/functions/{id_or_name}", http.MethodDelete, http.HandlerFunc(s.deleteFunction))
	handle("/healthz", http.MethodGet, http.HandlerFunc(s.healthz))
	handle("/workers", http.MethodGet, http.HandlerFunc(s.workers))
	handle("/functions/{id_or_name}/logs", http.MethodGet, http.HandlerFunc(s.logs))
	// The dashboard's endpoints (stats.go) and the page itself (ui.go).
	handle("/stats/overview", http.MethodGet, http.HandlerFunc(s.statsOverview))
	handle("/stats/functions", http.MethodGet, http.HandlerFunc(s.statsFunctions))
	handle("/tasks", http.MethodGet, http.HandlerFunc(s.recentTasks))
	handle("/functions/{id_or_name}/failures", http.MethodGet, http.HandlerFunc(s.functionFailures))
	r.Handle("/ui", s.m.instrument("/ui/", ui.Handler()))
	r.PathPrefix(ui.Prefix).Handler(s.m.instrument("/ui/", ui.Handler()))
	handle("/metrics", http.MethodGet, metrics.Handler(s.cfg.Metrics))
	r.NotFoundHandler = s.m.instrument(unmatchedRoute, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, notFound("no such endpoint: %s %s (see docs/API.md)", r.Method, r.URL.Path))
	}))
	r.MethodNotAllowedHandler = s.m.instrument(unmatchedRoute, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &requestError{kind: errMethod,
			msg: "method " + r.Method + " is not allowed on " + r.URL.Path})
	}))
	return s.guarding(s.authenticating(r))
}

// Handler returns the HTTP handler of the API, recovering from panics as 500 answers.
func (s *Server) Handler() http.Handler { return s.recovering(s.handler) }

// recovering answers a panic in h with a 500. Each route is wrapped in it inside its
// instrumentation (so the 500 is counted), and the router as a whole outside.
func (s *Server) recovering(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				s.writeError(w, r, errors.New("panic in handler"))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// Serve serves the API on ln until ctx ends, then shuts down gracefully: long polls answer
// at once with the current state, and requests in flight get up to 10 s to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // a 32 MiB module on a slow link
		WriteTimeout:      s.cfg.MaxWait + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("server listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.stopOnce.Do(func() { close(s.stopping) })
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	s.log.Info("server stopped")
	return err
}

// fnCache keeps functions by id. Functions are immutable, so entries never go stale; the
// map is bounded by dropping an arbitrary part of it when full.
type fnCache struct {
	mu  sync.RWMutex
	m   map[string]store.Function
	max int
}

func (c *fnCache) get(id string) (store.Function, bool) {
	c.mu.RLock()
	f, ok := c.m[id]
	c.mu.RUnlock()
	return f, ok
}

func (c *fnCache) put(f store.Function) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]store.Function)
	}
	if len(c.m) >= c.max {
		drop := c.max / 8
		for k := range c.m {
			if drop <= 0 {
				break
			}
			delete(c.m, k)
			drop--
		}
	}
	c.m[f.ID] = f
}

func (c *fnCache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// functionByID returns a function of the request's namespace by its uuid, from the cache
// when possible (another namespace's function is not found). A string that
// is not a uuid is a 404 as an unknown id would be.
func (s *Server) functionByID(ctx context.Context, id string) (store.Function, error) {
	ns := namespace(ctx)
	if f, ok := s.fns.get(id); ok && f.Namespace == ns {
		return f, nil
	}
	if !validUUID(id) {
		return store.Function{}, notFound("no function with id %q (a function_id is a uuid)", id)
	}
	f, err := s.st.FunctionIn(ctx, ns, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Function{}, notFound("no function with id %q", id)
	}
	if err != nil {
		return store.Function{}, err
	}
	if f.ID != id { // the store resolved a name that looks like a uuid: not an id
		return store.Function{}, notFound("no function with id %q", id)
	}
	s.fns.put(f)
	return f, nil
}

// validUUID accepts the canonical 36-character form only.
func validUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	_, err := uuid.Parse(id)
	return err == nil
}
