package store

// Every Redis key and channel faas uses is built here, from Config.Prefix (default "faas:").
//
//	<prefix>module:<sha256>   string  a module's bytes, stored once (SET NX), kept forever
//	<prefix>function:<id>     hash    id, name, module, size, limits (JSON), created (unix ms)
//	<prefix>fname:<name>      string  the id of the newest function with that name
//	<prefix>functions         zset    function ids scored by creation time (unix ms)
//	<prefix>task:<id>         hash    see the task* field names below; no TTL until terminal,
//	                                  then TaskTTL (and the input is dropped)
//	<prefix>queue             list    QUEUED task ids: submit LPUSHes, Claim RPOPs (FIFO)
//	<prefix>leases            zset    RUNNING task ids scored by lease deadline (Redis TIME, ms)
//	<prefix>recoverer         hash    last: the last lease recovery run, hold: none before
//	                                  (Redis TIME, ms; the outage guard of scriptRecover)
//	tasks                     channel dispatcher wake-up (contract name: never prefixed);
//	                                  payload: the queued ids, space-separated
//	<prefix>done              channel ids of tasks that became terminal, space-separated
//
// Scripts receive the key prefixes of task and function hashes in ARGV and build those keys
// themselves (Claim cannot know the ids before popping them). That is only correct when all
// keys live on one node: on a Redis Cluster the prefix is given a hash tag ("{faas}:") so
// every key hashes to one slot (see New).

const (
	// TasksChannel is the contract's dispatcher wake-up channel.
	TasksChannel = "tasks"
)

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
)

type keys struct{ prefix string }

func (k keys) module(hash string) string { return k.prefix + "module:" + hash }
func (k keys) function(id string) string { return k.prefix + "function:" + id }
func (k keys) functionPrefix() string    { return k.prefix + "function:" }
func (k keys) fname(name string) string  { return k.prefix + "fname:" + name }
func (k keys) functions() string         { return k.prefix + "functions" }
func (k keys) task(id string) string     { return k.prefix + "task:" + id }
func (k keys) taskPrefix() string        { return k.prefix + "task:" }
func (k keys) queue() string             { return k.prefix + "queue" }
func (k keys) leases() string            { return k.prefix + "leases" }
func (k keys) recoverer() string         { return k.prefix + "recoverer" }
func (k keys) doneChannel() string       { return k.prefix + "done" }
func (k keys) tasksChannel() string      { return TasksChannel }
