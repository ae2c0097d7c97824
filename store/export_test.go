package store

import (
	"context"
	"faas/task"

	"github.com/redis/go-redis/v9"
)

// Test-only access, for the external tests (package store_test), to what no other package
// needs.

// ClientOf returns the Redis client s uses.
func ClientOf(s *Store) redis.UniversalClient { return s.rdb }

// HasModule reports whether a module is stored.
func HasModule(ctx context.Context, s *Store, hash string) (bool, error) {
	return s.hasModule(ctx, hash)
}

// RequeueOwner requeues every RUNNING task claimed by owner.
func RequeueOwner(ctx context.Context, s *Store, owner, reason string) (int, error) {
	return s.requeueOwner(ctx, owner, reason)
}

// Withdraw runs what a failed Submit runs to leave nothing queued.
func Withdraw(ctx context.Context, s *Store, fnID string, ids []string) error {
	return s.withdraw(ctx, Function{ID: fnID}, ids)
}

// Subscribers returns how many clients subscribe to the store's channel named name
// ("cancel", "done", "tasks").
func Subscribers(ctx context.Context, s *Store, name string) (int64, error) {
	ch := s.k.prefix + name
	m, err := s.rdb.PubSubNumSub(ctx, ch).Result()
	return m[ch], err
}

// Dequeue takes a QUEUED task off its queue and fails it (the cancel primitive).
func Dequeue(ctx context.Context, s *Store, id string, kind task.Kind, msg string) (bool, error) {
	return s.dequeue(ctx, id, kind, msg)
}
