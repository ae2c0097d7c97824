package cli

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/spf13/cobra"

	"faas/dispatch"
	"faas/internal/metrics"
	"faas/protocol"
	"faas/server"
	"faas/store"
)

func (e *env) devCmd() *cobra.Command {
	var (
		addr     string
		workers  int
		insecure bool
		prefix   string
	)
	cmd := &cobra.Command{
		Use:   "dev [--addr 127.0.0.1:8000] [-w N]",
		Short: "Everything in one process: embedded Redis, server and a local dispatcher",
		Long: `Dev runs the whole platform in one process, with nothing else to install or start: an
embedded Redis (miniredis, served on a loopback port so the same code paths run as in
production, behind a random password so that other local processes cannot use it), the REST server on --addr and a local dispatcher running up to N tasks at once.
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
	fs.StringVar(&addr, "addr", defaultAddr, "address the REST server listens on")
	fs.IntVarP(&workers, "workers", "w", runtime.NumCPU(), "tasks run at once")
	fs.BoolVar(&insecure, "insecure", false, "serve on a non-loopback --addr (dev has no API keys: anyone who reaches it can do everything)")
	prefixFlag(fs, &prefix)
	scfg := serverConfigFlags(fs)
	dopts := addDaemonFlags(fs)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		return dopts.run(cmd.Context(), e, func(d *startup) (components, error) {
			if workers < 1 {
				return nil, usagef("-w must be at least 1, got %d", workers)
			}
			kp, err := storePrefix(prefix)
			if err != nil {
				return nil, err
			}
			if err := checkServerConfig(scfg); err != nil {
				return nil, err
			}
			if err := checkAddr("addr", addr); err != nil {
				return nil, err
			}
			if !insecure && !loopback(addr) {
				return nil, usagef("refusing to serve without API keys on %s, which other machines may reach: "+
					"faas dev listens on loopback only (or pass --insecure; 'faas server --api-keys' is for sharing)", addr)
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("listening on %s: %w", addr, err)
			}
			d.onClose(func() { ln.Close() })

			// Other local processes can reach a loopback port: a random password keeps them
			// from reading or changing tasks (and it is never printed).
			pw, err := server.NewKey()
			if err != nil {
				return nil, err
			}
			mr := miniredis.NewMiniRedis()
			mr.RequireAuth(pw)
			if err := mr.StartAddr("127.0.0.1:0"); err != nil {
				return nil, fmt.Errorf("starting the embedded Redis: %w", err)
			}
			d.onClose(func() {
				start := time.Now()
				mr.Close()
				d.log.Debug("embedded Redis stopped", "took", time.Since(start))
			})
			redisURL := "redis://:" + pw + "@" + mr.Addr() + "/0"

			st, err := d.openStore(redisURL, store.OpenOptions{}, store.Config{Prefix: kp})
			if err != nil {
				return nil, err
			}
			sb, err := d.sandbox()
			if err != nil {
				return nil, err
			}

			done := st.NewDone()
			reg := metrics.NewRegistry() // the server's /metrics serves the dispatcher's too
			scfg.Metrics = reg
			srv := server.New(st, sb, done, *scfg, d.log)
			dcfg := dispatch.Config{Mode: protocol.ModeLocal, Workers: workers, Metrics: reg, Version: version()}
			d.log.Info("faas dev: serving the REST API; the embedded Redis keeps nothing on disk",
				"url", "http://"+ln.Addr().String(), "dashboard", "http://"+ln.Addr().String()+"/ui/",
				"redis", redactURL(redisURL), "workers", workers)
			return components{
				"server":     func(ctx context.Context) error { return srv.Serve(ctx, ln) },
				"done":       done.Run,
				"dispatcher": func(ctx context.Context) error { return dispatch.Run(ctx, st, sb, dcfg, d.log) },
			}, nil
		})
	})
	return cmd
}
