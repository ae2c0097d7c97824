package store

// STUB: the store helper replaces this file with the real implementation; signatures are
// the contract other packages compile against.

import (
	"context"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Store is the Redis data model. Safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
}

// Open parses a redis:// URL (or a comma-separated list of host:port for a cluster) and
// returns a client; it does not ping.
func Open(url string) (redis.UniversalClient, error) { panic("stub") }

// New returns a store on rdb. It does not own rdb (the caller closes it).
func New(rdb redis.UniversalClient, cfg Config) *Store { return &Store{rdb: rdb, cfg: cfg} }

// Ping checks Redis is reachable (ErrUnavailable otherwise).
func (s *Store) Ping(ctx context.Context) error { panic("stub") }

// PutModule stores wasm under its hash once (SET NX); the same bytes again are a no-op.
func (s *Store) PutModule(ctx context.Context, hash string, wasm []byte) error { panic("stub") }

// Module returns a module's bytes, ErrNotFound if absent.
func (s *Store) Module(ctx context.Context, hash string) ([]byte, error) { panic("stub") }

// CreateFunction stores f (ID, Name, ModuleHash set by the caller) and points f.Name at it.
func (s *Store) CreateFunction(ctx context.Context, f Function) error { panic("stub") }

// Function returns a function by id, or by name (the newest with that name). ErrNotFound if none.
func (s *Store) Function(ctx context.Context, idOrName string) (Function, error) { panic("stub") }

// Functions lists every function, newest first.
func (s *Store) Functions(ctx context.Context) ([]Function, error) { panic("stub") }

// Submit creates one QUEUED task per input for function fn, appends them to the durable
// queue in order and publishes one wake-up on the "tasks" channel, in one round trip
// (a script). It returns the new task ids, in input order.
func (s *Store) Submit(ctx context.Context, fn Function, inputs [][]byte) ([]string, error) {
	panic("stub")
}

// Task returns a task's record (without its input). ErrNotFound if unknown or expired.
func (s *Store) Task(ctx context.Context, id string) (Record, error) { panic("stub") }

// Tasks returns many records in one round trip; a missing one has Status "" and ID set.
func (s *Store) Tasks(ctx context.Context, ids []string) ([]Record, error) { panic("stub") }

// Claim takes up to n tasks from the queue for owner (a dispatcher identity), marks them
// RUNNING with attempt+1 and a lease of LeaseTTL, and returns them with everything an
// executor needs (module hash, name, limits, input), in one round trip. It returns an empty
// slice, not an error, when the queue is empty.
func (s *Store) Claim(ctx context.Context, owner string, n int) ([]task.Task, error) {
	panic("stub")
}

// SetWorker records which worker runs a claimed task (for the record and for tests that
// measure capacity). Best effort, may be pipelined by the caller's batching.
func (s *Store) SetWorker(ctx context.Context, refs []task.Ref, worker string) error {
	panic("stub")
}

// Complete records outcomes in one round trip: for each, only if the task is RUNNING at that
// same attempt does it become COMPLETED/FAILED (first terminal state wins); the lease is
// dropped, the record gets TaskTTL, and waiters are woken on "faas:done". It returns how
// many outcomes were applied (the rest were late or duplicates).
func (s *Store) Complete(ctx context.Context, outcomes []task.Outcome) (int, error) {
	panic("stub")
}

// Renew extends the leases of refs to now+LeaseTTL, in one round trip.
func (s *Store) Renew(ctx context.Context, refs []task.Ref) error { panic("stub") }

// Requeue puts back tasks whose worker was lost: each still RUNNING at that attempt goes back
// to the queue (QUEUED) if attempts < MaxAttempts, else becomes FAILED kind worker_lost.
func (s *Store) Requeue(ctx context.Context, refs []task.Ref, reason string) error {
	panic("stub")
}

// Release hands back tasks never started (graceful shutdown): back to the queue's head
// with the attempt not counted.
func (s *Store) Release(ctx context.Context, refs []task.Ref) error { panic("stub") }

// RecoverExpired requeues (as Requeue does) every task whose lease ended before now.
// Any dispatcher may run it; the script makes it safe to run concurrently. Returns how many.
func (s *Store) RecoverExpired(ctx context.Context) (int, error) { panic("stub") }

// QueueLen is the number of QUEUED tasks waiting.
func (s *Store) QueueLen(ctx context.Context) (int64, error) { panic("stub") }
