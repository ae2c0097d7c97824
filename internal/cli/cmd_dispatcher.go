package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"faas/dispatch"
	"faas/internal/metrics"
	"faas/internal/zsock"
	"faas/protocol"
	"faas/sandbox"
	"faas/store"
)

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
		keyPath string
		authz   string
		insec   bool
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
	fs.StringVar(&bind, "bind", dispatch.DefaultBind, "pull/push mode: interface to listen on")
	fs.DurationVar(&taskTTL, "task-ttl", store.DefaultTaskTTL, "how long finished tasks are kept")
	fs.DurationVar(&lease, "lease", store.DefaultLeaseTTL, "lease on a running task: renewed every lease/4; a dispatcher that dies loses its tasks back to the queue after this long")
	fs.IntVar(&maxAtt, "max-attempts", store.DefaultMaxAttempts, "runs of a task whose worker was lost before it is FAILED with kind worker_lost")
	fs.DurationVar(&hb, "heartbeat", dispatch.DefaultHeartbeatInterval, "pull/push mode: heartbeat interval between the dispatcher and its workers")
	fs.DurationVar(&hbT, "heartbeat-timeout", 0, "pull/push mode: a worker silent this long is lost and its tasks re-run (default 3×heartbeat+1s)")
	fs.StringVar(&keyPath, "key", "", "pull/push mode: the dispatcher's CURVE secret key file (PATH.key from 'faas keygen'); needs --authorized-workers")
	fs.StringVar(&authz, "authorized-workers", "", "pull/push mode: file of worker CURVE public keys allowed to connect, one per line ('#' comments); re-read on SIGHUP")
	fs.BoolVar(&insec, "insecure", false, "pull/push mode: allow --bind beyond loopback without --key (anyone reaching the port can take tasks)")
	fs.StringVar(&metAddr, "metrics-addr", "", `serve Prometheus metrics at http://ADDR/metrics ("" serves none)`)
	redisURL := e.redisFlag(fs)
	dopts := addDaemonFlags(fs)
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions(protocol.Modes, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		changed := cmd.Flags().Changed
		return dopts.run(cmd.Context(), e, func(d *startup) (components, error) {
			if mode == "" {
				return nil, usagef("missing -m local|pull|push")
			}
			m, err := protocol.ParseMode(mode)
			if err != nil {
				return nil, usagef("-m %q: want local, pull or push", mode)
			}
			if workers < 1 {
				return nil, usagef("-w must be at least 1, got %d", workers)
			}
			cfg := dispatch.Config{Mode: m, Workers: workers, Bind: bind, Port: port,
				HeartbeatInterval: hb, HeartbeatTimeout: hbT, Insecure: insec, Version: version()}
			if (keyPath == "") != (authz == "") {
				return nil, usagef("--key and --authorized-workers go together")
			}
			if keyPath != "" {
				if cfg.Key, err = zsock.ReadKeyPair(keyPath); err != nil {
					return nil, usagef("--key: %v", err)
				}
				keys, err := zsock.ReadAuthorized(authz)
				if err != nil {
					return nil, usagef("--authorized-workers: %v", err)
				}
				cfg.Authorized = zsock.NewAllowList(keys)
				d.log.Info("CURVE on: workers must hold an authorized key", "public_key", cfg.Key.Public, "authorized", len(keys))
			}
			// A port left out is 0 to dispatch.Config: say which flag is missing.
			if m.Remote() && !changed("port") {
				return nil, usagef("-m %s needs -p PORT", m)
			}
			if err := cfg.Validate(); err != nil {
				return nil, dispatchUsage(err)
			}
			if m.Remote() {
				if net.ParseIP(bind) == nil && bind != "localhost" && bind != "*" {
					return nil, usagef("--bind %q: want an IP address, like 127.0.0.1 or 0.0.0.0", bind)
				}
				if changed("workers") {
					d.log.Warn("-w is for -m local; remote workers set their own capacity")
				}
			} else if changed("port") || changed("bind") {
				d.log.Warn("-p and --bind are for -m pull and push; ignored in local mode")
			}
			if taskTTL <= 0 {
				return nil, usagef("--task-ttl must be positive, got %v", taskTTL)
			}
			if lease < 100*time.Millisecond {
				return nil, usagef("--lease must be at least 100ms, got %v", lease)
			}
			if maxAtt < 1 {
				return nil, usagef("--max-attempts must be at least 1, got %d", maxAtt)
			}
			if hb <= 0 || hbT < 0 || (hbT > 0 && hbT <= hb) {
				return nil, usagef("--heartbeat must be positive and --heartbeat-timeout longer than it, got %v and %v", hb, hbT)
			}
			if metAddr != "" {
				if err := checkAddr("metrics-addr", metAddr); err != nil {
					return nil, err
				}
			}
			scfg := store.Config{TaskTTL: taskTTL, LeaseTTL: lease, MaxAttempts: maxAtt}
			u, ro, err := redisURL.resolve(&scfg)
			if err != nil {
				return nil, err
			}
			st, err := d.openStore(u, ro, scfg)
			if err != nil {
				return nil, err
			}
			var sb *sandbox.Sandbox // only local mode runs tasks in this process
			if m == protocol.ModeLocal {
				if sb, err = d.sandbox(); err != nil {
					return nil, err
				}
			}
			comps := components{}
			if metAddr != "" {
				ln, err := net.Listen("tcp", metAddr)
				if err != nil {
					return nil, fmt.Errorf("--metrics-addr: listening on %s: %w", metAddr, err)
				}
				reg := metrics.NewRegistry()
				cfg.Metrics = reg
				if err := d.registerStoreMetrics(reg); err != nil {
					return nil, err
				}
				comps["metrics"] = func(ctx context.Context) error { return metrics.Serve(ctx, ln, reg, d.log) }
			}
			comps["dispatcher"] = func(ctx context.Context) error { return dispatch.Run(ctx, st, sb, cfg, d.log) }
			if cfg.Authorized != nil {
				comps["authorized-workers"] = func(ctx context.Context) error { return reloadOnHUP(ctx, authz, cfg.Authorized, d.log) }
			}
			return comps, nil
		})
	})
	return cmd
}

// dispatcherFlags names the flag behind each dispatch.Config field that Validate checks.
var dispatcherFlags = map[string]string{"Mode": "-m", "Port": "-p", "Bind": "--bind", "Authorized": "--authorized-workers"}

// reloadOnHUP re-reads the allow-list on every SIGHUP until ctx ends. A file that cannot be
// read keeps the list as it was.
func reloadOnHUP(ctx context.Context, path string, list *zsock.AllowList, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
		}
		keys, err := zsock.ReadAuthorized(path)
		if err != nil {
			log.Error("SIGHUP: re-reading the authorized workers failed; keeping the list as it was", "err", err)
			continue
		}
		removed := list.Set(keys)
		log.Info("SIGHUP: authorized workers re-read", "keys", len(keys), "removed", len(removed))
	}
}

// dispatchUsage turns dispatch.Config.Validate's error into a usage error naming the flag.
func dispatchUsage(err error) error {
	var ce *dispatch.ConfigError
	if errors.As(err, &ce) {
		if ce.Field == "Bind" {
			return usagef("--bind %v without --key: a dispatcher without CURVE listens on loopback only; pass --key PATH.key --authorized-workers FILE (see 'faas keygen'), or --insecure to accept any worker that can reach the port", ce.Value)
		}
		if flag, ok := dispatcherFlags[ce.Field]; ok {
			return usagef("%s %v: %s", flag, ce.Value, ce.Reason)
		}
	}
	return usagef("%v", err)
}
