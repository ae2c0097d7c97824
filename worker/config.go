// Package worker is the remote worker: it connects to a dispatcher (docs/PROTOCOL.md), runs
// the tasks it is sent (push) or asks for (pull), and hands back what it cannot finish.
package worker

// This file: the configuration, its defaults and validation, and Run.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"faas/executor"
	"faas/internal/zsock"
	"faas/protocol"
	"faas/sandbox"
	"faas/task"
)

// MaxQueue bounds Config.Queue.
const MaxQueue = 1000

// Config configures a remote worker. Every zero value means the documented default.
type Config struct {
	// Mode is protocol.ModePull (ask the dispatcher for work when a slot is free) or ModePush (register a
	// capacity; the dispatcher sends work). Required.
	Mode protocol.Mode
	// Slots is how many tasks run at once; default 1.
	Slots int
	// Queue is how many tasks the worker accepts beyond its slots, to start as slots free:
	// for functions of microseconds, the next task is then already here when one ends,
	// instead of a round trip away. The dispatcher sees Slots+Queue; a queued task's
	// deadline starts when it starts. Default 0; at most MaxQueue.
	Queue int
	// Endpoint is the dispatcher's address, tcp://HOST:PORT. Required.
	Endpoint string
	// ID names the worker in task records; default "<hostname>-<pid>-<random>".
	ID string
	// HeartbeatInterval is how often the worker heartbeats before the dispatcher's ACK
	// (which then sets both interval and timeout); default 1s.
	HeartbeatInterval time.Duration
	// Key is the worker's CURVE key pair and DispatcherKey the dispatcher's public key (Z85),
	// which the worker pins: both set, or neither (no CURVE).
	Key           zsock.KeyPair
	DispatcherKey string
	// ConnectTimeout, if set, is how long the worker waits for a dispatcher that does not
	// answer (at start, or after losing it) before Run returns ErrNoDispatcher. Zero: it
	// waits for ever, warning with back-off (see noAnswerFirst).
	ConnectTimeout time.Duration
}

// ErrBadConfig is returned for a configuration that cannot run.
var ErrBadConfig = errors.New("bad worker configuration")

// Run connects to a dispatcher and runs tasks until ctx ends. Then it stops asking for work,
// lets running tasks finish for up to 7s, hands back those it interrupted, says BYE and
// returns (within about 8s). A dispatcher that goes away (restart, crash) is waited for:
// the worker registers again when it returns.
func Run(ctx context.Context, sb *sandbox.Sandbox, cfg Config, log *slog.Logger) error {
	cfg, err := cfg.withDefaults(sb)
	if err != nil {
		return err
	}
	if log == nil {
		log = slog.Default()
	}
	w := &worker{
		cfg:     cfg,
		sb:      sb,
		log:     log.With("worker", cfg.ID, "mode", cfg.Mode),
		running: make(map[string]task.Ref, cfg.Slots),
		stops:   make(map[string]context.CancelCauseFunc, cfg.Slots),
		waiters: make(map[string][]chan moduleResult),
		asked:   make(map[string]time.Time),
		hbEvery: cfg.HeartbeatInterval,
		hbDead:  3*cfg.HeartbeatInterval + time.Second,
	}
	w.ex = executor.New(sb, w, cfg.ID)
	var b [12]byte
	rand.Read(b[:])
	w.routeSecret = hex.EncodeToString(b[:])
	return w.run(ctx)
}

// withDefaults refuses a configuration that cannot run and fills in the defaults.
func (cfg Config) withDefaults(sb *sandbox.Sandbox) (Config, error) {
	if !cfg.Mode.Remote() {
		return cfg, fmt.Errorf("%w: mode %q is not pull or push", ErrBadConfig, cfg.Mode)
	}
	if cfg.ConnectTimeout < 0 {
		return cfg, fmt.Errorf("%w: negative connect timeout %v", ErrBadConfig, cfg.ConnectTimeout)
	}
	if cfg.Endpoint == "" {
		return cfg, fmt.Errorf("%w: no dispatcher endpoint", ErrBadConfig)
	}
	if sb == nil {
		return cfg, fmt.Errorf("%w: no sandbox", ErrBadConfig)
	}
	if cfg.Key.IsZero() != (cfg.DispatcherKey == "") {
		return cfg, fmt.Errorf("%w: a key and the dispatcher's key go together", ErrBadConfig)
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 1
	}
	if cfg.Queue < 0 || cfg.Queue > MaxQueue {
		return cfg, fmt.Errorf("%w: queue %d: want 0 to %d", ErrBadConfig, cfg.Queue, MaxQueue)
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		cfg.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	return cfg, nil
}
