package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"faas/dispatch"
	"faas/internal/metrics"
	"faas/protocol"
	"faas/sandbox"
	"faas/server"
	"faas/store"
	"faas/task"
	"faas/worker"
)

// stopWithin bounds a clean stop after SIGINT/SIGTERM (the contract's 10 seconds).
const stopWithin = 10 * time.Second

// daemonOpts are the flags every long-running command shares.
type daemonOpts struct {
	logLevel, logFormat string
	cacheDir            string
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
	fs.StringVar(&o.cacheDir, "cache-dir", defaultCacheDir(), `wazero compilation cache directory ("" keeps compiled code in memory only)`)
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

func (o *daemonOpts) sandbox(ctx context.Context) (*sandbox.Sandbox, error) {
	if o.cacheDir != "" {
		if err := os.MkdirAll(o.cacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("--cache-dir: %w", err)
		}
	}
	sb, err := sandbox.New(ctx, sandbox.Config{CacheDir: o.cacheDir})
	if err != nil {
		return nil, fmt.Errorf("starting the sandbox: %w", err)
	}
	return sb, nil
}

func closeSandbox(sb *sandbox.Sandbox, log *slog.Logger) {
	if sb == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := sb.Close(ctx); err != nil {
		log.Warn("closing the sandbox", "err", err)
	}
	log.Debug("sandbox closed", "took", time.Since(start))
}

// openStore connects to Redis. An unreachable Redis is only a warning: the server answers
// 503 and the dispatcher retries until it comes back.
func openStore(ctx context.Context, redisURL string, cfg store.Config, log *slog.Logger) (*store.Store, func(), error) {
	rdb, err := store.Open(redisURL)
	if err != nil {
		return nil, nil, usagef("--redis %q: %v", redisURL, err)
	}
	st := store.New(rdb, cfg)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := st.Ping(pctx); err != nil {
		log.Warn("Redis is not reachable yet; carrying on and retrying", "redis", redactURL(redisURL), "err", err)
	}
	return st, func() {
		start := time.Now()
		_ = rdb.Close()
		log.Debug("Redis connections closed", "took", time.Since(start))
	}, nil
}

// redactURL hides a password in a Redis URL for logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// runAll runs components until ctx ends (or one fails, which stops the others). After ctx
// ends, components get stopWithin to return; past that runAll gives up on them.
func runAll(ctx context.Context, log *slog.Logger, comps map[string]func(context.Context) error) error {
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

// serverConfigFlags binds the server's limits to flags.
func serverConfigFlags(fs *pflag.FlagSet) *server.Config {
	c := &server.Config{}
	m := task.MaxLimits()
	fs.DurationVar(&c.MaxWait, "max-wait", 30*time.Second, "longest ?wait= a client may ask for")
	fs.Int64Var(&c.MaxModuleBytes, "max-module-bytes", 32<<20, "largest module accepted")
	fs.IntVar(&c.MaxBatch, "max-batch", 10_000, "most inputs (or task ids to wait on) per request")
	fs.Int64Var(&c.MaxBatchBytes, "max-batch-bytes", 64<<20, "most input bytes per /execute_batch")
	fs.Int64Var(&c.MaxLimits.TimeoutMs, "max-timeout-ms", m.TimeoutMs, "largest timeout_ms a function may ask for")
	fs.Int64Var(&c.MaxLimits.MemoryMB, "max-memory-mb", m.MemoryMB, "largest memory_mb a function may ask for")
	fs.Int64Var(&c.MaxLimits.StdoutBytes, "max-stdout-bytes", m.StdoutBytes, "largest stdout_bytes a function may ask for")
	fs.Int64Var(&c.MaxLimits.StdinBytes, "max-stdin-bytes", m.StdinBytes, "largest stdin_bytes a function may ask for")
	return c
}

func checkServerConfig(c *server.Config) error {
	for _, f := range []struct {
		flag string
		v    int64
	}{
		{"max-module-bytes", c.MaxModuleBytes}, {"max-batch", int64(c.MaxBatch)}, {"max-batch-bytes", c.MaxBatchBytes},
		{"max-timeout-ms", c.MaxLimits.TimeoutMs}, {"max-memory-mb", c.MaxLimits.MemoryMB},
		{"max-stdout-bytes", c.MaxLimits.StdoutBytes}, {"max-stdin-bytes", c.MaxLimits.StdinBytes},
	} {
		if f.v <= 0 {
			return usagef("--%s must be positive, got %d", f.flag, f.v)
		}
	}
	if c.MaxWait <= 0 {
		return usagef("--max-wait must be positive, got %v", c.MaxWait)
	}
	return nil
}

func checkAddr(flag, addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return usagef("--%s %q: want HOST:PORT, like 127.0.0.1:8000", flag, addr)
	}
	return nil
}

func (e *env) serverCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "server [--addr 127.0.0.1:8000] [--redis URL]",
		Short: "Serve the REST API",
		Long: `Server serves the REST API on --addr, keeping functions and tasks in Redis. Tasks run
when a dispatcher ('faas dispatcher') shares the same Redis. Stops cleanly on SIGINT/SIGTERM.`,
		Example: `  faas server
  faas server --addr 0.0.0.0:8000 --redis redis://redis.internal:6379/0 --log-format json
  FAAS_REDIS_URL=redis://127.0.0.1:6380/0 faas server --max-wait 60s`,
		Args: exactArgs(),
	}
	fs := cmd.Flags()
	fs.StringVar(&addr, "addr", "127.0.0.1:8000", "address to listen on")
	redisURL := e.redisFlag(fs)
	scfg := serverConfigFlags(fs)
	dopts := addDaemonFlags(fs)
	cmd.RunE = wrap(func(cmd *cobra.Command, args []string) error {
		log, err := dopts.logger(e)
		if err != nil {
			return err
		}
		if err := checkServerConfig(scfg); err != nil {
			return err
		}
		if err := checkAddr("addr", addr); err != nil {
			return err
		}
		ctx := cmd.Context()
		st, closeStore, err := openStore(ctx, redisURL(), store.Config{}, log)
		if err != nil {
			return err
		}
		defer closeStore()
		sb, err := dopts.sandbox(ctx)
		if err != nil {
			return err
		}
		defer closeSandbox(sb, log)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		done := st.NewDone()
		scfg.Metrics = metrics.NewRegistry()
		srv := server.New(st, sb, done, *scfg, log)
		return runAll(ctx, log, map[string]func(context.Context) error{
			"server": func(ctx context.Context) error { return srv.Serve(ctx, ln) },
			"done":   done.Run,
		})
	})
	return cmd
}

func (e *env) dispatcherCmd() *cobra.Command {
	var (
		mode    string
		workers int
		port    int
		bind    string
		taskTTL time.Duration
		lease   time.Duration
		maxAtt  int
		hb, hbT time.Duration
		metAddr string
	)
	cmd := &cobra.Command{
		Use:   "dispatcher -m local|pull|push [-w N] [-p PORT] [--bind 127.0.0.1] [--redis URL]",
		Short: "Run queued tasks: in a local pool, or on remote pull or push workers",
		Long: `Dispatcher takes tasks from the durable queue in Redis and runs them:

  -m local -w N     in this process, up to N at once (default: the number of CPUs)
  -m pull  -p PORT  on 'faas worker pull' workers, which ask for work when free
  -m push  -p PORT  on 'faas worker push' workers, least-loaded first

The remote modes listen on --bind (loopback by default: opening the dispatcher to other
hosts is a deliberate --bind 0.0.0.0). Several dispatchers may share one Redis; each task is
taken by exactly one. On SIGINT/SIGTERM it stops taking work, lets running tasks finish or
hands them back to the queue, and exits within 10 seconds.

With --metrics-addr it serves Prometheus metrics at http://ADDR/metrics (see docs/API.md).`,
		Example: `  faas dispatcher -m local -w 4
  faas dispatcher -m local --metrics-addr 127.0.0.1:9100
  faas dispatcher -m pull -p 5555
  faas dispatcher -m push -p 5556 --bind 0.0.0.0 --redis redis://10.0.0.5:6379/0`,
		Args: exactArgs(),
	}
	fs := cmd.Flags()
	fs.StringVarP(&mode, "mode", "m", "", "local, pull or push (required)")
	fs.IntVarP(&workers, "workers", "w", runtime.NumCPU(), "local mode: tasks run at once")
	fs.IntVarP(&port, "port", "p", 0, "pull/push mode: TCP port for workers (required)")
	fs.StringVar(&bind, "bind", "127.0.0.1", "pull/push mode: interface to listen on")
	fs.DurationVar(&taskTTL, "task-ttl", 24*time.Hour, "how long finished tasks are kept")
	fs.DurationVar(&lease, "lease", store.DefaultLeaseTTL, "lease on a running task: renewed every lease/4; a dispatcher that dies loses its tasks back to the queue after this long")
	fs.IntVar(&maxAtt, "max-attempts", store.DefaultMaxAttempts, "runs of a task whose worker was lost before it is FAILED with kind worker_lost")
	fs.DurationVar(&hb, "heartbeat", time.Second, "pull/push mode: heartbeat interval between the dispatcher and its workers")
	fs.DurationVar(&hbT, "heartbeat-timeout", 0, "pull/push mode: a worker silent this long is lost and its tasks re-run (default 3×heartbeat+1s)")
	fs.StringVar(&metAddr, "metrics-addr", "", `serve Prometheus metrics at http://ADDR/metrics ("" serves none)`)
	redisURL := e.redisFlag(fs)
	dopts := addDaemonFlags(fs)
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions([]string{"local", "pull", "push"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = wrap(func(cmd *cobra.Command, args []string) error {
		log, err := dopts.logger(e)
		if err != nil {
			return err
		}
		switch mode {
		case "":
			return usagef("missing -m local|pull|push")
		case "local", "pull", "push":
		default:
			return usagef("-m %q: want local, pull or push", mode)
		}
		if workers < 1 {
			return usagef("-w must be at least 1, got %d", workers)
		}
		if mode != "local" {
			if !cmd.Flags().Changed("port") {
				return usagef("-m %s needs -p PORT", mode)
			}
			if port < 1 || port > 65535 {
				return usagef("-p %d: want a TCP port, 1 to 65535", port)
			}
			if net.ParseIP(bind) == nil && bind != "localhost" && bind != "*" {
				return usagef("--bind %q: want an IP address, like 127.0.0.1 or 0.0.0.0", bind)
			}
			if cmd.Flags().Changed("workers") {
				log.Warn("-w is for -m local; remote workers set their own capacity")
			}
		} else if cmd.Flags().Changed("port") || cmd.Flags().Changed("bind") {
			log.Warn("-p and --bind are for -m pull and push; ignored in local mode")
		}
		if taskTTL <= 0 {
			return usagef("--task-ttl must be positive, got %v", taskTTL)
		}
		if lease < 100*time.Millisecond {
			return usagef("--lease must be at least 100ms, got %v", lease)
		}
		if maxAtt < 1 {
			return usagef("--max-attempts must be at least 1, got %d", maxAtt)
		}
		if hb <= 0 || hbT < 0 || (hbT > 0 && hbT <= hb) {
			return usagef("--heartbeat must be positive and --heartbeat-timeout longer than it, got %v and %v", hb, hbT)
		}
		if metAddr != "" {
			if err := checkAddr("metrics-addr", metAddr); err != nil {
				return err
			}
		}
		ctx := cmd.Context()
		st, closeStore, err := openStore(ctx, redisURL(), store.Config{TaskTTL: taskTTL, LeaseTTL: lease, MaxAttempts: maxAtt}, log)
		if err != nil {
			return err
		}
		defer closeStore()
		var sb *sandbox.Sandbox
		if mode == "local" {
			if sb, err = dopts.sandbox(ctx); err != nil {
				return err
			}
			defer closeSandbox(sb, log)
		}
		cfg := dispatch.Config{Mode: protocol.Mode(mode), Workers: workers, Bind: bind, Port: port,
			HeartbeatInterval: hb, HeartbeatTimeout: hbT}
		comps := map[string]func(context.Context) error{}
		if metAddr != "" {
			ln, err := net.Listen("tcp", metAddr)
			if err != nil {
				return fmt.Errorf("--metrics-addr: listening on %s: %w", metAddr, err)
			}
			reg := metrics.NewRegistry()
			cfg.Metrics = reg
			comps["metrics"] = func(ctx context.Context) error { return metrics.Serve(ctx, ln, reg, log) }
		}
		comps["dispatcher"] = func(ctx context.Context) error { return dispatch.Run(ctx, st, sb, cfg, log) }
		return runAll(ctx, log, comps)
	})
	return cmd
}

// parseEndpoint checks a tcp://HOST:PORT endpoint.
func parseEndpoint(s string) error {
	rest, ok := strings.CutPrefix(s, "tcp://")
	if !ok {
		return fmt.Errorf("endpoint %q: want tcp://HOST:PORT", s)
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil || host == "" {
		return fmt.Errorf("endpoint %q: want tcp://HOST:PORT", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("endpoint %q: port %q is not a TCP port", s, port)
	}
	return nil
}

func (e *env) workerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker pull|push N tcp://HOST:PORT",
		Short: "Run tasks for a pull or push dispatcher",
		Long: `Worker connects to a dispatcher started with the same mode ('faas dispatcher -m pull' or
'-m push') at tcp://HOST:PORT and runs up to N tasks at once, each in a fresh sandbox. On
SIGINT/SIGTERM it finishes or hands back its tasks and exits within 10 seconds.`,
		Example: `  faas worker pull 4 tcp://127.0.0.1:5555
  faas worker push 2 tcp://dispatcher.internal:5556 --log-format json`,
		Args:      exactArgs("pull|push", "N", "tcp://HOST:PORT"),
		ValidArgs: []string{"pull", "push"},
	}
	var hb time.Duration
	cmd.Flags().DurationVar(&hb, "heartbeat", time.Second, "heartbeat interval until the dispatcher's ACK sets its own")
	dopts := addDaemonFlags(cmd.Flags())
	cmd.RunE = wrap(func(cmd *cobra.Command, args []string) error {
		log, err := dopts.logger(e)
		if err != nil {
			return err
		}
		if hb <= 0 {
			return usagef("--heartbeat must be positive, got %v", hb)
		}
		mode := args[0]
		if mode != "pull" && mode != "push" {
			return usagef("mode %q: want pull or push", mode)
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 {
			return usagef("N %q: want the number of tasks to run at once, at least 1", args[1])
		}
		if err := parseEndpoint(args[2]); err != nil {
			return usagef("%v", err)
		}
		ctx := cmd.Context()
		sb, err := dopts.sandbox(ctx)
		if err != nil {
			return err
		}
		defer closeSandbox(sb, log)
		cfg := worker.Config{Mode: protocol.Mode(mode), Slots: n, Endpoint: args[2], HeartbeatInterval: hb}
		err = runAll(ctx, log, map[string]func(context.Context) error{
			"worker": func(ctx context.Context) error { return worker.Run(ctx, sb, cfg, log) },
		})
		return err
	})
	return cmd
}

func (e *env) devCmd() *cobra.Command {
	var (
		addr    string
		workers int
	)
	cmd := &cobra.Command{
		Use:   "dev [--addr 127.0.0.1:8000] [-w N]",
		Short: "Everything in one process: embedded Redis, server and a local dispatcher",
		Long: `Dev runs the whole platform in one process, with nothing else to install or start: an
embedded Redis (miniredis, served on a loopback port so the same code paths run as in
production), the REST server on --addr and a local dispatcher running up to N tasks at once.
Prometheus metrics of both are served at /metrics on --addr.

The embedded Redis keeps nothing on disk: functions and tasks are gone when dev stops.
For anything that must last, run 'faas server' and 'faas dispatcher' on a real Redis.`,
		Example: `  faas dev
  faas dev --addr 127.0.0.1:9000 -w 8
  # in another shell:
  faas register double samples/double/double_wat.wasm
  faas exec double --input 21 --wait`,
		Args: exactArgs(),
	}
	fs := cmd.Flags()
	fs.StringVar(&addr, "addr", "127.0.0.1:8000", "address the REST server listens on")
	fs.IntVarP(&workers, "workers", "w", runtime.NumCPU(), "tasks run at once")
	scfg := serverConfigFlags(fs)
	dopts := addDaemonFlags(fs)
	cmd.RunE = wrap(func(cmd *cobra.Command, args []string) error {
		log, err := dopts.logger(e)
		if err != nil {
			return err
		}
		if workers < 1 {
			return usagef("-w must be at least 1, got %d", workers)
		}
		if err := checkServerConfig(scfg); err != nil {
			return err
		}
		if err := checkAddr("addr", addr); err != nil {
			return err
		}
		ctx := cmd.Context()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		defer ln.Close()

		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("starting the embedded Redis: %w", err)
		}
		defer func() {
			start := time.Now()
			mr.Close()
			log.Debug("embedded Redis stopped", "took", time.Since(start))
		}()
		redisURL := "redis://" + mr.Addr() + "/0"

		st, closeStore, err := openStore(ctx, redisURL, store.Config{}, log)
		if err != nil {
			return err
		}
		defer closeStore()
		sb, err := dopts.sandbox(ctx)
		if err != nil {
			return err
		}
		defer closeSandbox(sb, log)

		done := st.NewDone()
		reg := metrics.NewRegistry() // the server's /metrics serves the dispatcher's too
		scfg.Metrics = reg
		srv := server.New(st, sb, done, *scfg, log)
		dcfg := dispatch.Config{Mode: protocol.ModeLocal, Workers: workers, Metrics: reg}
		log.Info("faas dev: serving the REST API; the embedded Redis keeps nothing on disk",
			"url", "http://"+ln.Addr().String(), "redis", redisURL, "workers", workers)
		return runAll(ctx, log, map[string]func(context.Context) error{
			"server":     func(ctx context.Context) error { return srv.Serve(ctx, ln) },
			"done":       done.Run,
			"dispatcher": func(ctx context.Context) error { return dispatch.Run(ctx, st, sb, dcfg, log) },
		})
	})
	return cmd
}
