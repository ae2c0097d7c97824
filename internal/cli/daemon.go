package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"faas/internal/metrics"
	"faas/sandbox"
	"faas/store"
)

// stopWithin bounds a clean stop after SIGINT/SIGTERM (the contract's 10 seconds).
const stopWithin = 10 * time.Second

// The defaults of the long-running commands' flags that no package defines.
const (
	defaultAddr     = "127.0.0.1:8000"
	defaultRedisURL = "redis://127.0.0.1:6379/0"
)

// daemonOpts are the flags every long-running command shares.
type daemonOpts struct {
	logLevel, logFormat string
	cacheDir            string
	compile             *compileOpts
}

func defaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "faas")
}

func addDaemonFlags(fs *pflag.FlagSet) *daemonOpts {
	o := &daemonOpts{}
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&o.cacheDir, "cache-dir", defaultCacheDir(), `wazero compilation cache directory ("" keeps compiled code in a private temporary directory)`)
	o.compile = addCompileFlags(fs)
	return o
}

func (o *daemonOpts) logger(e *env) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, hopts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", o.logFormat)
}

// components are what a daemon runs side by side, by name (the name is in its errors).
type components map[string]func(context.Context) error

// startup is a long-running command being set up: its logger, and what it opened, to be
// closed in reverse order once its components have stopped.
type startup struct {
	ctx     context.Context
	log     *slog.Logger
	opts    *daemonOpts
	closers []func()
	// notReplicated counts the writes acknowledged before --redis-wait-replicas replicas had
	// them (nil without the flag); registerStoreMetrics puts it on a /metrics registry.
	notReplicated *prometheus.CounterVec
}

// run is the start-up every long-running command shares: it makes the logger (a bad
// --log-level is the first usage error), lets setup check the flags and open what the
// command needs, runs the components it returns until ctx ends (SIGINT/SIGTERM), then
// closes what setup opened.
func (o *daemonOpts) run(ctx context.Context, e *env, setup func(d *startup) (components, error)) error {
	log, err := o.logger(e)
	if err != nil {
		return err
	}
	if _, err := o.compile.config(""); err != nil { // a usage error before anything starts
		return err
	}
	d := &startup{ctx: ctx, log: log, opts: o}
	defer d.close()
	comps, err := setup(d)
	if err != nil {
		return err
	}
	return runAll(ctx, log, comps)
}

// onClose registers f to run when the daemon has stopped, before what was opened earlier.
func (d *startup) onClose(f func()) { d.closers = append(d.closers, f) }

func (d *startup) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// sandbox starts the Wasm sandbox, with the --cache-dir compilation cache.
func (d *startup) sandbox() (*sandbox.Sandbox, error) {
	dir := d.opts.cacheDir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("--cache-dir: %w", err)
		}
		if err := checkCacheDir(dir); err != nil {
			return nil, err
		}
	}
	cfg, err := d.opts.compile.config(dir)
	if err != nil {
		return nil, err
	}
	cfg.Isolate.Log = d.log
	if cfg.Isolate.Binary, err = childBinary(); err != nil {
		return nil, fmt.Errorf("finding the faas binary for compilation: %w", err)
	}
	sb, err := sandbox.New(d.ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("starting the sandbox: %w", err)
	}
	d.onClose(func() {
		// The daemon's context has ended by now: closing gets its own bound.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := sb.Close(ctx); err != nil {
			d.log.Warn("closing the sandbox", "err", err)
		}
		d.log.Debug("sandbox closed", "took", time.Since(start))
	})
	return sb, nil
}

// openStore connects to Redis. An unreachable Redis is only a warning: the server answers
// 503 and the dispatcher retries until it comes back.
func (d *startup) openStore(redisURL string, o store.OpenOptions, cfg store.Config) (*store.Store, error) {
	rdb, err := store.OpenWith(redisURL, o)
	if err != nil {
		return nil, usagef("--redis: %v", err) // store's errors redact the password
	}
	d.onClose(func() {
		start := time.Now()
		_ = rdb.Close()
		d.log.Debug("Redis connections closed", "took", time.Since(start))
	})
	if cfg.WaitReplicas > 0 && cfg.NotReplicated == nil {
		d.notReplicated = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faas_redis_not_replicated_total",
			Help: "Writes (op: submit, complete) acknowledged before --redis-wait-replicas replicas had them, within --redis-wait-timeout.",
		}, []string{"op"})
		logIt := notReplicatedLog(d.log, cfg.WaitReplicas)
		cfg.NotReplicated = func(op string, err error) {
			d.notReplicated.WithLabelValues(op).Inc()
			logIt(op, err)
		}
	}
	st := store.New(rdb, cfg)
	pctx, cancel := context.WithTimeout(d.ctx, 2*time.Second)
	defer cancel()
	if err := st.Ping(pctx); err != nil {
		d.log.Warn("Redis is not reachable yet; carrying on and retrying", "redis", redactURL(redisURL), "err", err)
		return st, nil
	}
	// A single-node URL on a cluster node would fail most commands with MOVED: say so now.
	if err := st.CheckTopology(pctx); err != nil {
		return nil, usagef("--redis %s: %v", redactURL(redisURL), err)
	}
	// The shard of a task is in its id: another count than the deployment's would strand
	// its tasks. (Unchecked when Redis is down at start: the first process up records it.)
	if err := st.CheckShards(pctx); err != nil {
		if errors.Is(err, store.ErrShards) {
			return nil, usagef("--shards: %v", strings.TrimPrefix(err.Error(), "store: "))
		}
		d.log.Warn("could not check the task shard count", "err", err)
	}
	return st, nil
}

// registerStoreMetrics puts the store's counters (faas_redis_not_replicated_total, with
// --redis-wait-replicas) on reg.
func (d *startup) registerStoreMetrics(reg prometheus.Registerer) error {
	if d.notReplicated == nil {
		return nil
	}
	_, err := metrics.Register(reg, d.notReplicated)
	return err
}

// notReplicatedLog warns that writes were acknowledged before n replicas had them: at once,
// then at most every 10 s with the number of such writes since.
func notReplicatedLog(log *slog.Logger, n int) func(op string, err error) {
	var mu sync.Mutex
	var last time.Time
	skipped := 0
	return func(op string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 10*time.Second {
			skipped++
			return
		}
		log.Warn("writes acknowledged before enough replicas had them (--redis-wait-replicas); a failover now could lose them",
			"replicas", n, "op", op, "err", err, "more_since_last_warning", skipped)
		last, skipped = time.Now(), 0
	}
}

// redactURL hides a password in a Redis URL for logs, even in one that does not parse.
func redactURL(s string) string { return store.RedactURL(s) }

// checkAddr checks a HOST:PORT flag before anything is opened, so that a typo is a usage
// error rather than a failure to listen.
func checkAddr(flag, addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return usagef("--%s %q: want HOST:PORT, like 127.0.0.1:8000", flag, addr)
	}
	return nil
}

// runAll runs components until ctx ends (or one fails, which stops the others). After ctx
// ends, components get stopWithin to return; past that runAll gives up on them.
func runAll(ctx context.Context, log *slog.Logger, comps components) error {
	g, gctx := errgroup.WithContext(ctx)
	for name, run := range comps {
		g.Go(func() error {
			err := run(gctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Error("component stopped", "component", name, "err", err)
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("stopping", "within", stopWithin)
	select {
	case err := <-done:
		if err == nil {
			log.Info("stopped cleanly")
		}
		return err
	case <-time.After(stopWithin):
		return fmt.Errorf("did not stop within %v", stopWithin)
	}
}
