package cli

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"faas/internal/metrics"
	"faas/server"
	"faas/store"
	"faas/task"
)

// serverConfigFlags binds the server's limits to flags, defaulting to the server's own.
func serverConfigFlags(fs *pflag.FlagSet) *server.Config {
	c := &server.Config{}
	m := task.MaxLimits()
	fs.DurationVar(&c.MaxWait, "max-wait", server.DefaultMaxWait, "longest ?wait= a client may ask for")
	fs.Int64Var(&c.MaxModuleBytes, "max-module-bytes", server.DefaultMaxModuleBytes, "largest module accepted")
	fs.IntVar(&c.MaxBatch, "max-batch", server.DefaultMaxBatch, "most inputs (or task ids to wait on) per request")
	fs.Int64Var(&c.MaxBatchBytes, "max-batch-bytes", server.DefaultMaxBatchBytes, "most input bytes per /execute_batch")
	fs.Int64Var(&c.MaxInflightBodyBytes, "max-inflight-body-bytes", server.DefaultMaxInflightBodyBytes,
		"request body bytes held at once across all requests (beyond: 503 with Retry-After)")
	fs.Int64Var(&c.MaxInflightResultBytes, "max-inflight-result-bytes", server.DefaultMaxInflightResultBytes,
		"task output bytes answered at once by /result and /wait (beyond: 503, or omitted from /wait)")
	fs.Int64Var(&c.MaxWaitResultBytes, "max-wait-result-bytes", server.DefaultMaxWaitResultBytes,
		"output bytes one /wait answer carries; the rest come as \"result_omitted\": true")
	fs.IntVar(&c.MaxLogFollowers, "max-log-followers", server.DefaultMaxLogFollowers,
		"clients following function logs at once (each holds a Redis connection; beyond: 503)")
	fs.IntVar(&c.MaxLogFollowersPerNamespace, "max-log-followers-per-namespace", server.DefaultMaxLogFollowersPerNamespace,
		"of those, at most this many of one namespace (beyond: 429)")
	fs.Int64Var(&c.MaxLimits.TimeoutMs, "max-timeout-ms", m.TimeoutMs, "largest timeout_ms a function may ask for")
	fs.Int64Var(&c.MaxLimits.MemoryMB, "max-memory-mb", m.MemoryMB, "largest memory_mb a function may ask for")
	fs.Int64Var(&c.MaxLimits.StdoutBytes, "max-stdout-bytes", m.StdoutBytes, "largest stdout_bytes a function may ask for")
	fs.Int64Var(&c.MaxLimits.StdinBytes, "max-stdin-bytes", m.StdinBytes, "largest stdin_bytes a function may ask for")
	return c
}

// checkServerConfig rejects limits of zero or less: in server.Config they would mean "the
// default", which is not what a user typing 0 asked for.
func checkServerConfig(c *server.Config) error {
	for _, f := range []struct {
		flag string
		v    int64
	}{
		{"max-module-bytes", c.MaxModuleBytes}, {"max-batch", int64(c.MaxBatch)}, {"max-batch-bytes", c.MaxBatchBytes},
		{"max-inflight-body-bytes", c.MaxInflightBodyBytes}, {"max-inflight-result-bytes", c.MaxInflightResultBytes},
		{"max-wait-result-bytes", c.MaxWaitResultBytes},
		{"max-log-followers", int64(c.MaxLogFollowers)}, {"max-log-followers-per-namespace", int64(c.MaxLogFollowersPerNamespace)},
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

func (e *env) serverCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "server [--addr 127.0.0.1:8000] [--redis URL]",
		Short: "Serve the REST API",
		Long: `Server serves the REST API on --addr, keeping functions and tasks in Redis. Tasks run
when a dispatcher ('faas dispatcher') shares the same Redis. Stops cleanly on SIGINT/SIGTERM.

With --api-keys FILE every call but /healthz needs a key of the file, and each key's
namespace sees only its own functions and tasks (see 'faas apikey'). Without it, the server
has one namespace and no keys, and refuses to listen off loopback unless --insecure.
SIGHUP re-reads the key file and the TLS certificate.`,
		Example: `  faas server
  faas server --addr 0.0.0.0:8443 --api-keys /etc/faas/keys --tls-cert cert.pem --tls-key key.pem \
    --redis rediss://redis.internal:6380/0 --redis-ca ca.pem --redis-password-file /etc/faas/redis.pw
  FAAS_REDIS_URL=redis://127.0.0.1:6380/0 faas server --max-wait 60s`,
		Args: exactArgs(),
	}
	fs := cmd.Flags()
	fs.StringVar(&addr, "addr", defaultAddr, "address to listen on")
	redisURL := e.redisFlag(fs)
	scfg := serverConfigFlags(fs)
	topts := addTenantFlags(fs)
	dopts := addDaemonFlags(fs)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		return dopts.run(cmd.Context(), e, func(d *startup) (components, error) {
			if err := checkServerConfig(scfg); err != nil {
				return nil, err
			}
			if err := checkAddr("addr", addr); err != nil {
				return nil, err
			}
			ring, err := topts.check(addr)
			if err != nil {
				return nil, err
			}
			cert, err := topts.certificate()
			if err != nil {
				return nil, err
			}
			var cfg store.Config
			u, ro, err := redisURL.resolve(&cfg)
			if err != nil {
				return nil, err
			}
			st, err := d.openStore(u, ro, cfg)
			if err != nil {
				return nil, err
			}
			sb, err := d.sandbox()
			if err != nil {
				return nil, err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("listening on %s: %w", addr, err)
			}
			if cert != nil {
				ln = cert.listener(ln)
			}
			done := st.NewDone()
			scfg.Metrics = metrics.NewRegistry()
			if err := d.registerStoreMetrics(scfg.Metrics); err != nil {
				return nil, err
			}
			scfg.Keys, scfg.CORSOrigin, scfg.DefaultQuota = ring, topts.corsOrigin, topts.quota
			srv := server.New(st, sb, done, *scfg, d.log)
			if ring != nil {
				d.log.Info("API keys loaded", "namespaces", len(ring.Namespaces()))
			} else {
				d.log.Info("no API keys: one namespace, no authentication", "namespace", store.DefaultNamespace)
			}
			return components{
				"server": func(ctx context.Context) error { return srv.Serve(ctx, ln) },
				"done":   done.Run,
				"sighup": topts.reloadOnHUP(d.log, srv, st, ring, cert),
			}, nil
		})
	})
	return cmd
}
