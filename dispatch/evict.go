package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"faas/protocol"
	"faas/store"
)

// This file: forgetting a deleted module. The store announces the hash of a module whose last
// function was deleted; local mode drops it from its sandbox, the hub from its module cache
// and tells its workers with EVICT (docs/PROTOCOL.md), who drop it from theirs.

// evictTimeout bounds one eviction from a sandbox (closing a compiled module, removing a file).
const evictTimeout = 5 * time.Second

// listenEvictions calls evict for every module announced deleted until ctx ends; the
// returned wait blocks until the listener has stopped (after ctx ended).
func listenEvictions(ctx context.Context, st *store.Store, log *slog.Logger, evict func(hash string)) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			err := st.ListenEvictions(ctx, evict)
			if err == nil || ctx.Err() != nil {
				return
			}
			log.Warn("listening for deleted modules failed; retrying", "err", err)
			sleep(ctx, time.Second)
		}
	}()
	return func() { <-done }
}

// sandboxEvictor evicts from an in-process sandbox (local mode).
type sandboxEvictor interface {
	Evict(ctx context.Context, hash string) error
}

func evictFrom(sb sandboxEvictor, log *slog.Logger) func(hash string) {
	return func(hash string) {
		ctx, cancel := context.WithTimeout(context.Background(), evictTimeout)
		defer cancel()
		if err := sb.Evict(ctx, hash); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("evicting a deleted module failed", "hash", hash, "err", err)
			return
		}
		log.Debug("deleted module evicted", "hash", hash)
	}
}

// evicted forgets a deleted module in the hub and tells every registered worker. A worker
// that misses the message (its pipe full, or not connected now) keeps the module until its
// cache bounds age it out; it can no longer fetch it (the store has it no more).
func (h *hub) evicted(hash string) {
	if b, ok := h.modules[hash]; ok {
		delete(h.modules, hash)
		h.moduleBytes -= len(b)
	}
	told := 0
	for _, w := range h.workers {
		delete(w.modulesSent, hash)
		if !w.leaving && h.send(w, protocol.Evict{Hashes: []string{hash}}) {
			told++
		}
	}
	h.log.Debug("deleted module evicted", "hash", hash, "workers_told", told)
}
