package store

import "fmt"

// Every Redis key and channel faas uses is built here, from Config.Prefix (default "faas:").
//
// Names, function lists and queues are per namespace: <ns> below is "" for the default
// namespace (its keys are those of faas before namespaces) and "ns:<name>:" for the others.
// Function and task ids are uuids, global; their records carry their namespace.
//
//	<prefix>module:<sha256>   string  a module's bytes, stored once (SET NX), deleted with
//	                                  the last function that uses it
//	<prefix>modref:<sha256>   set     ids of the functions that use the module
//	<prefix>function:<id>     hash    id, name, module, size, limits (JSON), created (unix ms),
//	                                  ns (absent: default)
//	<prefix><ns>fname:<name>  string  the id of the newest function with that name
//	<prefix><ns>functions     zset    function ids scored by creation time (unix ms)
//	<prefix>task:<id>         hash    see the task* field names below; no TTL until terminal,
//	                                  then TaskTTL (and the input is dropped)
//	<prefix><ns>queue         list    QUEUED task ids: submit LPUSHes, Claim RPOPs (FIFO)
//	<prefix><ns>usage         hash    module_bytes: the bytes of the namespace's functions'
//	                                  modules (a module counts once per function)
//	<prefix>upgraded          hash    modrefs: functions of an older faas were counted
//	<prefix>nsring            list    namespaces that may have queued tasks, in the order
//	                                  Claim serves them (round robin)
//	<prefix>nsqueued          set     the same namespaces, to add each to the ring once
//	<prefix>leases            zset    RUNNING task ids scored by lease deadline (Redis TIME, ms)
//	<prefix>recoverer         hash    last: the last lease recovery run, hold: none before
//	                                  (Redis TIME, ms; the outage guard of scriptRecover)
//	<prefix>tasks             channel dispatcher wake-up; payload: the queued ids,
//	                                  space-separated (before --prefix it was "tasks",
//	                                  unprefixed, so two deployments woke each other)
//	<prefix>done              channel ids of tasks that became terminal, space-separated
//	<prefix>cancel            channel ids of RUNNING tasks just cancelled (FAILED cancelled
//	                                  already): whichever dispatcher runs one interrupts it
//	<prefix>{live}:dispatcher:<id>  string  a live dispatcher and its workers (JSON), PX its
//	                                        heartbeat timeout (live.go)
//	<prefix>{live}:dispatchers      zset    ids of the dispatchers above, scored by when last
//	                                        written (ms)
//	<prefix>log:{<function id>}     stream  the function's recorded outcomes, about 1,000,
//	                                        PX 24h (logs.go)
//
// The dashboard's history (interval counters, recent-task indexes) has keys of its own,
// each with a hash tag of its own, written outside the scripts: see history.go.
//	<prefix>evict             channel the hash of a module whose last function was deleted:
//	                                  dispatchers drop it from their caches and their workers'
//
// Scripts receive the key prefixes of task and function hashes in ARGV and build those keys
// themselves (Claim cannot know the ids before popping them). That is only correct when all
// keys live on one node: on a Redis Cluster the prefix is given a hash tag ("{faas}:") so
// every key hashes to one slot (see New).

// Task hash fields.
const (
	fStatus     = "status"
	fFunctionID = "function_id"
	fInput      = "input"
	fResult     = "result"
	fErrKind    = "err_kind"
	fErrMsg     = "err_msg"
	fStderr     = "stderr"
	fAttempts   = "attempts"
	fWorker     = "worker"
	fOwner      = "owner"
	fCreated    = "created"
	fStarted    = "started"
	fFinished   = "finished"
	fDurationMs = "duration_ms"
	fNamespace  = "ns" // absent in the default namespace
	fCPUUnits   = "cpu_units"
)

// Function hash fields.
const (
	ffID      = "id"
	ffName    = "name"
	ffModule  = "module"
	ffSize    = "size"
	ffLimits  = "limits"
	ffCreated = "created"
	ffNS      = "ns"  // absent in the default namespace
	ffABI     = "abi" // absent for a command (and in records older than the reactor ABI)
)

type keys struct{ prefix string }

func (k keys) module(hash string) string { return k.prefix + "module:" + hash }
func (k keys) modref(hash string) string { return k.prefix + "modref:" + hash }
func (k keys) function(id string) string { return k.prefix + "function:" + id }
func (k keys) functionPrefix() string    { return k.prefix + "function:" }
func (k keys) task(id string) string     { return k.prefix + "task:" + id }
func (k keys) taskPrefix() string        { return k.prefix + "task:" }

// nsPrefix is the prefix of namespace ns's own keys; the default namespace has today's.
func (k keys) nsPrefix(ns string) string {
	if ns == "" || ns == DefaultNamespace {
		return k.prefix
	}
	return k.prefix + "ns:" + ns + ":"
}

func (k keys) fname(ns, name string) string { return k.nsPrefix(ns) + "fname:" + name }
func (k keys) functions(ns string) string   { return k.nsPrefix(ns) + "functions" }
func (k keys) queue() string                { return k.queueOf(DefaultNamespace) }
func (k keys) queueOf(ns string) string     { return k.nsPrefix(ns) + "queue" }
func (k keys) usage(ns string) string       { return k.nsPrefix(ns) + "usage" }
func (k keys) upgraded() string             { return k.prefix + "upgraded" }
func (k keys) nsRing() string               { return k.prefix + "nsring" }
func (k keys) nsQueued() string             { return k.prefix + "nsqueued" }
func (k keys) leases() string               { return k.prefix + "leases" }
func (k keys) recoverer() string            { return k.prefix + "recoverer" }
func (k keys) doneChannel() string          { return k.prefix + "done" }
func (k keys) tasksChannel() string         { return k.prefix + "tasks" }
func (k keys) cancelChannel() string        { return k.prefix + "cancel" }

// Keys that are not a task's own state carry a hash tag of their own and are written by
// plain commands (pipelined from Go), never inside the scripts that touch task and queue
// keys: live.go and logs.go.
func (k keys) liveDispatcher(id string) string { return k.prefix + "{live}:dispatcher:" + id }
func (k keys) liveIndex() string               { return k.prefix + "{live}:dispatchers" }
func (k keys) functionLog(fnID string) string  { return k.prefix + "log:{" + fnID + "}" }
func (k keys) evictChannel() string            { return k.prefix + "evict" }

// DefaultDeployment is the deployment name (--prefix) whose keys are faas's historical ones.
const DefaultDeployment = "faas"

// KeyPrefix returns the key prefix (Config.Prefix) of a deployment named name, such as
// --prefix gives: name + ":". A name is 1 to 64 of A-Z a-z 0-9 _ . - : no ':' (so one
// deployment's keys are never another's) and no braces (a Redis Cluster hash tag is added
// by New).
func KeyPrefix(name string) (string, error) {
	if name == "" || len(name) > 64 {
		return "", fmt.Errorf("store: deployment name %q: want 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return "", fmt.Errorf("store: deployment name %q: only letters, digits, '_', '.' and '-'", name)
		}
	}
	return name + ":", nil
}
