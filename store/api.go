// Package store is the Redis data model of faas: modules stored once by sha256, functions,
// task records, the durable queue, leases on running tasks, and the two pub/sub channels
// ("faas:tasks" wakes dispatchers; "faas:done" wakes waiters; "faas:" is the prefix). Every key is built in keys.go;
// every Lua script sits beside the method that runs it, commented with its KEYS and ARGV,
// which a small args type builds in one place (see lua.go).
//
// This file holds the package's types and errors; store.go the Store itself, functions.go
// modules and functions, tasks.go submitting and reading tasks, summaries.go reading them
// without their large outputs, claim.go claiming and completing them, leases.go lease
// renewal and recovery, lua.go what the scripts share, keys.go every key, done.go the
// shared subscribers, open.go the Redis client.
package store

import (
	"errors"
	"fmt"
	"time"

	"faas/task"
)

var (
	// ErrNotFound: no such function, task or module (or it expired).
	ErrNotFound = errors.New("not found")
	// ErrUnavailable wraps every failure to reach Redis (connection refused, timeout, LOADING...).
	// The server maps it to 503.
	ErrUnavailable = errors.New("redis unavailable")
	// ErrQuota: the namespace's quota refuses the write (nothing was written).
	ErrQuota = errors.New("quota exceeded")
	// ErrNotReplicated: fewer replicas than Config.WaitReplicas acknowledged a write in
	// Config.WaitTimeout (given to Config.NotReplicated). It wraps ErrUnavailable.
	ErrNotReplicated = fmt.Errorf("%w: not acknowledged by enough replicas", ErrUnavailable)
)

// Config tunes the store. Every zero value means the documented default.
type Config struct {
	// TaskTTL is how long a terminal task record is kept. Default 24h.
	TaskTTL time.Duration
	// LeaseTTL is how long a claimed task may go without its lease being renewed before
	// any dispatcher's recoverer takes it back. Default 15s.
	LeaseTTL time.Duration
	// MaxAttempts is how many times a task is started before a lost worker makes it FAILED
	// with kind worker_lost. Default 3.
	MaxAttempts int
	// Prefix is put before every key and channel (--prefix NAME gives "NAME:", see
	// KeyPrefix), so that deployments and tests can share one Redis. Default "faas:".
	Prefix string
	// Shards is the number of task shards: each holds its own queues, leases and task
	// records under one hash tag, so that a Redis Cluster spreads tasks over its masters.
	// Default 1 on a single node or Sentinel set (today's keys), DefaultClusterShards on a
	// Redis Cluster; at most MaxShards. Every process of a deployment must use the same
	// count: CheckShards refuses another.
	Shards int
	// WaitReplicas, above 0, makes Submit and Complete wait after their writes until that
	// many replicas have them (Redis WAIT, on the connection that wrote), for at most
	// WaitTimeout (default DefaultWaitTimeout): an acknowledged task or outcome then survives
	// the promotion of such a replica. Fewer in time does not fail the call (the write is
	// done, and dispatchers may have claimed the tasks already): it is reported to
	// NotReplicated, with an error wrapping ErrNotReplicated. Redis's own
	// min-replicas-to-write refuses writes outright while too few replicas are connected.
	// docs/RATIONALE.md, "Waiting for replicas".
	WaitReplicas  int
	WaitTimeout   time.Duration
	NotReplicated func(op string, err error)
}

// DefaultWaitTimeout is how long a write waits for Config.WaitReplicas replicas, and
// MaxWaitTimeout the longest it may: WAIT shares the connection's read timeout (2 s).
const (
	DefaultWaitTimeout = time.Second
	MaxWaitTimeout     = 1500 * time.Millisecond
)

// Function is a registered function. Functions are immutable: registering a name again
// makes a new function (the name then points at the newest).
type Function struct {
	ID         string `json:"function_id"`
	Name       string `json:"name"`
	ModuleHash string `json:"module_sha256"`
	ModuleSize int64  `json:"module_size"`
	// ABI is how the module is called: "command" (exports _start) or "reactor" (exports run,
	// pre-initialized once); see docs/API.md. Records stored without one are commands.
	ABI       string      `json:"abi"`
	Limits    task.Limits `json:"limits"` // with defaults applied
	CreatedAt time.Time   `json:"created_at"`
	// Namespace owns the function ("" is the default namespace). Not in API answers: a
	// caller only ever sees its own namespace's functions.
	Namespace string `json:"-"`
}

// The function ABIs (sandbox.ABICommand and sandbox.ABIReactor; store does not import sandbox).
const (
	ABICommand = "command"
	ABIReactor = "reactor"
)

// Record is a task as stored.
type Record struct {
	ID         string
	FunctionID string
	Status     task.Status
	Result     []byte        // stdout when COMPLETED
	Error      *task.Failure // when FAILED
	Stderr     []byte
	Attempts   int
	Worker     string
	CreatedAt  time.Time
	StartedAt  time.Time // zero until first RUNNING
	FinishedAt time.Time // zero until terminal
	DurationMs int64     // sandbox run time of the final attempt
	Namespace  string    // the namespace of its function (DefaultNamespace if none recorded)
	CPUUnits   uint64    // the final attempt's cpu units (task.Outcome.CPUUnits)
	// OutputBytes is the stored size of Result plus Stderr. Set by Summaries (which leaves
	// Result and Stderr out), so that a caller can budget the memory of reading them.
	OutputBytes int64
}
