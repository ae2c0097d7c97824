// Package dispatch moves tasks from the durable Redis queue to where they run and their
// outcomes back: in an in-process pool (local mode), to ZeroMQ workers that ask for work
// (pull mode), or to ZeroMQ workers it chooses, least-loaded first (push mode).
//
// Every mode is built on the same core (core.go): it claims tasks in batches, holds a lease
// on each one until its outcome is recorded, writes outcomes in batches, re-queues the
// tasks of lost workers and recovers tasks whose dispatcher died.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/sandbox"
	"faas/store"
)

// Config configures a dispatcher. Every zero value means the documented default.
type Config struct {
	Mode    protocol.Mode // local, pull or push
	Workers int           // local mode: tasks run at once; default 1
	Bind    string        // pull/push: interface to bind; default 127.0.0.1
	Port    int           // pull/push: TCP port; required

	// Owner names this dispatcher in task records and leases; default "<hostname>-<pid>".
	Owner string
	// ClaimBatch bounds how many tasks one claim takes from Redis; default 256.
	ClaimBatch int
	// Poll is how often the queue is checked with no wake-up on "tasks" (a safety net for
	// missed notifications); default 500ms.
	Poll time.Duration
	// HeartbeatInterval is how often remote workers and the dispatcher exchange heartbeats;
	// default 1s. A worker silent for HeartbeatTimeout (default 3×interval+1s) is lost.
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// DrainTimeout bounds how long shutdown waits for running tasks before handing them
	// back to the queue; default 8s (the contract allows 10s for a clean stop).
	DrainTimeout time.Duration
	// Key is the dispatcher's CURVE key pair. Set, every worker connection is encrypted and
	// authenticated: only the keys on Authorized may connect, and a worker's identity is its
	// key. Zero: no CURVE, which Validate allows only on a loopback Bind unless Insecure.
	Key zsock.KeyPair
	// Authorized is the allow-list of worker public keys (required with Key). Its Set may be
	// called at any time: the workers of a removed key are dropped, their tasks handed back.
	Authorized *zsock.AllowList
	// Insecure allows a Bind beyond loopback without Key (anyone who can reach the port can
	// then take tasks and forge results for the tasks it is sent).
	Insecure bool
	// MaxWorkersPerKey bounds the workers registered with one key (without CURVE, all
	// workers share one, empty key); default 64. Each key's handshakes are also rate limited
	// (a burst of twice this, then 2 per second).
	MaxWorkersPerKey int
	// Version is what the live registry says this dispatcher runs (faas version).
	Version string
	// Metrics is the registry the dispatcher registers its metrics on (docs/API.md lists
	// them); dispatchers sharing one count into the same series. Default (nil): counted,
	// registered nowhere, so not served.
	Metrics prometheus.Registerer
}

// Defaults of Config.
const (
	DefaultBind              = "127.0.0.1"
	DefaultHeartbeatInterval = time.Second
)

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.Bind == "" {
		c.Bind = DefaultBind
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.ClaimBatch <= 0 {
		c.ClaimBatch = 256
	}
	if c.Poll <= 0 {
		c.Poll = 500 * time.Millisecond
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 3*c.HeartbeatInterval + time.Second
	}
	if c.MaxWorkersPerKey <= 0 {
		c.MaxWorkersPerKey = 64
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 8 * time.Second
	}
	return c
}

// ErrBadConfig is returned for a configuration that cannot run.
var ErrBadConfig = errors.New("bad dispatcher configuration")

// ConfigError names the field of a Config that cannot run, so that a caller can point at
// its own name for it (the command line at a flag). It matches ErrBadConfig.
type ConfigError struct {
	Field  string // the Config field, like "Port"
	Value  any    // its value
	Reason string // what a valid value is
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%v: %s %#v: %s", ErrBadConfig, e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrBadConfig) hold.
func (e *ConfigError) Is(target error) bool { return target == ErrBadConfig }

// Validate reports a Config that cannot run as a *ConfigError; zero values are defaults
// and valid, except the port of a remote mode, which has none. Run calls it.
func (c Config) Validate() error {
	if _, err := protocol.ParseMode(string(c.Mode)); err != nil {
		return &ConfigError{Field: "Mode", Value: c.Mode, Reason: "want local, pull or push"}
	}
	if c.Mode.Remote() && (c.Port < 1 || c.Port > 65535) {
		return &ConfigError{Field: "Port", Value: c.Port, Reason: "want a TCP port, 1 to 65535"}
	}
	if !c.Mode.Remote() {
		return nil
	}
	if !c.Key.IsZero() && c.Authorized == nil {
		return &ConfigError{Field: "Authorized", Value: nil, Reason: "a dispatcher with a key needs the list of authorized worker keys"}
	}
	if c.Key.IsZero() && !c.Insecure && !IsLoopback(c.Bind) {
		return &ConfigError{Field: "Bind", Value: c.Bind, Reason: "listening beyond loopback needs a key and the authorized worker keys (or, knowingly, insecure)"}
	}
	return nil
}

// IsLoopback reports whether bind (an IP address, "localhost", or "" for the default)
// listens on loopback only.
func IsLoopback(bind string) bool {
	if bind == "" || bind == "localhost" {
		return true
	}
	ip := net.ParseIP(bind)
	return ip != nil && ip.IsLoopback()
}

// Run runs a dispatcher until ctx ends, then stops taking work, lets running tasks finish
// (or hands them back after DrainTimeout), writes every outcome it holds and returns.
// sb is used by local mode only (nil is fine for pull and push).
func Run(ctx context.Context, st *store.Store, sb *sandbox.Sandbox, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.Default()
	}
	log = log.With("mode", cfg.Mode, "owner", cfg.Owner)
	var mode func(context.Context, *core) error
	switch cfg.Mode {
	case protocol.ModeLocal:
		if sb == nil {
			return fmt.Errorf("%w: local mode needs a sandbox", ErrBadConfig)
		}
		mode = func(ctx context.Context, c *core) error { return runLocal(ctx, c, sb, cfg, log) }
	case protocol.ModePull:
		mode = func(ctx context.Context, c *core) error { return runPull(ctx, c, cfg, log) }
	case protocol.ModePush:
		mode = func(ctx context.Context, c *core) error { return runPush(ctx, c, cfg, log) }
	}

	m, err := newDispatchMetrics(cfg.Metrics)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	c := newCore(st, cfg, log, m)
	// The core outlives the mode: it must write the outcomes the mode produced while
	// draining, so it gets its own context, cancelled only once the mode has returned.
	coreCtx, stopCore := context.WithCancel(context.WithoutCancel(ctx))
	coreDone := make(chan error, 1)
	go func() { coreDone <- c.run(coreCtx, ctx) }()

	log.Info("dispatcher started")
	modeErr := mode(ctx, c)
	stopCore()
	coreErr := <-coreDone
	log.Info("dispatcher stopped")
	return errors.Join(modeErr, coreErr)
}
