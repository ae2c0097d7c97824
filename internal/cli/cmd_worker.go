package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"faas/dispatch"
	"faas/internal/zsock"
	"faas/protocol"
	"faas/worker"
)

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
SIGINT/SIGTERM it finishes or hands back its tasks and exits within 10 seconds.

With --key and --dispatcher-key the connection is encrypted and authenticated with CURVE:
the worker proves its key (which must be in the dispatcher's --authorized-workers) and
accepts only a dispatcher holding the pinned key. A refused key, a wrong dispatcher key or
a CURVE mismatch stops the worker within seconds with exit status 1 and the reason.

A dispatcher that does not answer is warned about after 5 s, then after 10 s, 20 s, ... (at
most every 5 minutes); with --connect-timeout D the worker gives up after D without an
answer (at start, or after losing its dispatcher) and exits 3.`,
		Example: `  faas worker pull 4 tcp://127.0.0.1:5555
  faas worker pull 4 tcp://10.0.0.7:5555 --key /etc/faas/worker-1.key --dispatcher-key /etc/faas/dispatcher.pub
  faas worker push 2 tcp://dispatcher.internal:5556 --log-format json
  faas worker push 2 tcp://127.0.0.1:5556 --queue 8        # short functions: 8 more on hand
  faas worker pull 4 tcp://10.0.0.7:5555 --connect-timeout 30s`,
		Args:      exactArgs("pull|push", "N", "tcp://HOST:PORT"),
		ValidArgs: protocol.RemoteModes,
	}
	var hb, connectTimeout time.Duration
	var queue int
	var keyPath, dispKey string
	cmd.Flags().StringVar(&keyPath, "key", "", "this worker's CURVE secret key file (PATH.key from 'faas keygen'); with --dispatcher-key")
	cmd.Flags().StringVar(&dispKey, "dispatcher-key", "", "the dispatcher's CURVE public key: a Z85 string, or a file holding it (its PATH.pub)")
	// Until the dispatcher's ACK sets the interval, the worker assumes the dispatcher's default.
	cmd.Flags().DurationVar(&hb, "heartbeat", dispatch.DefaultHeartbeatInterval, "heartbeat interval until the dispatcher's ACK sets its own")
	cmd.Flags().DurationVar(&connectTimeout, "connect-timeout", 0, "give up (exit 3) when no dispatcher has answered for this long, e.g. 30s (default: keep trying, warning after 5s and then less and less often)")
	cmd.Flags().IntVar(&queue, "queue", 0, fmt.Sprintf("tasks to accept beyond the N running, started as slots free (at most %d): for functions of microseconds the next task is then already here when one ends; the dispatcher sees N+queue", worker.MaxQueue))
	dopts := addDaemonFlags(cmd.Flags())
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		return dopts.run(cmd.Context(), e, func(d *startup) (components, error) {
			if hb <= 0 {
				return nil, usagef("--heartbeat must be positive, got %v", hb)
			}
			if connectTimeout < 0 {
				return nil, usagef("--connect-timeout must not be negative, got %v", connectTimeout)
			}
			mode, err := protocol.ParseRemoteMode(args[0])
			if err != nil {
				return nil, usagef("mode %q: want pull or push", args[0])
			}
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 {
				return nil, usagef("N %q: want the number of tasks to run at once, at least 1", args[1])
			}
			if err := parseEndpoint(args[2]); err != nil {
				return nil, usagef("%v", err)
			}
			sb, err := d.sandbox()
			if err != nil {
				return nil, err
			}
			if queue < 0 || queue > worker.MaxQueue {
				return nil, usagef("--queue %d: want 0 to %d", queue, worker.MaxQueue)
			}
			cfg := worker.Config{Mode: mode, Slots: n, Queue: queue, Endpoint: args[2], HeartbeatInterval: hb, ConnectTimeout: connectTimeout}
			if (keyPath == "") != (dispKey == "") {
				return nil, usagef("--key and --dispatcher-key go together")
			}
			if keyPath != "" {
				if cfg.Key, err = zsock.ReadKeyPair(keyPath); err != nil {
					return nil, usagef("--key: %v", err)
				}
				if cfg.DispatcherKey, err = zsock.ReadPublicKey(dispKey); err != nil {
					return nil, usagef("--dispatcher-key: %v", err)
				}
			}
			return components{
				"worker": func(ctx context.Context) error {
					err := worker.Run(ctx, sb, cfg, d.log)
					if errors.Is(err, worker.ErrWrongMode) { // a usage error, found on the wire
						return &exitError{code: ExitUsage, err: err}
					}
					if errors.Is(err, worker.ErrNoDispatcher) {
						return &exitError{code: ExitServer, err: err}
					}
					return err
				},
			}, nil
		})
	})
	return cmd
}
