package store

import (
	"fmt"
	"strconv"
	"strings"
)

// Every Redis key and channel faas uses is built here, from Config.Prefix (default "faas:";
// "{faas}:" on a Redis Cluster) and, for a task's own keys, its shard's prefix.
//
// Names, function lists and queues are per namespace: <ns> below is "" for the default
// namespace (its keys are those of faas before namespaces) and "ns:<name>:" for the others.
// Function and task ids are uuids, global; their records carry their namespace.
//
// Deployment-wide, under the prefix <p>:
//
//	<p>module:<sha256>   string  a module's bytes, stored once (SET NX), deleted with
//	                             the last function that uses it
//	<p>modref:<sha256>   set     ids of the functions that use the module
//	<p>function:<id>     hash    id, name, module, size, limits (JSON), created (unix ms),
//	                             ns (absent: default)
//	<p><ns>fname:<name>  string  the id of the newest function with that name
//	<p><ns>functions     zset    function ids scored by creation time (unix ms)
//	<p><ns>usage         hash    module_bytes: the bytes of the namespace's functions'
//	                             modules (a module counts once per function)
//	<p>upgraded          hash    modrefs: functions of an older faas were counted
//	<p>shards            string  the deployment's task shard count (CheckShards)
//	<p>tasks             channel dispatcher wake-up; payload: the queued ids,
//	                             space-separated (before --prefix it was "tasks",
//	                             unprefixed, so two deployments woke each other)
//	<p>done              channel ids of tasks that became terminal, space-separated
//
// Per task shard, under the shard's prefix <s> (with one shard <s> is <p>; with N > 1,
// shard i's is "{NAME:sII}:" or "{NAME:sII.J}:", see shardTag):
//
//	<s>task:<id>         hash    see the task* field names below; no TTL until terminal,
//	                             then TaskTTL (and the input is dropped). The shard is the
//	                             id's last two hex digits (mod N).
//	<s><ns>queue         list    QUEUED task ids: submit LPUSHes, Claim RPOPs (FIFO)
//	<s>requeue           list    tasks handed back (worker lost, released, lease expired):
//	                             Claim takes them first
//	<s>active            hash    namespace → its unfinished (queued + running) tasks
//	                             (before shards: the field "active" of <ns>usage)
//	<s>nsring            list    namespaces that may have queued tasks, in the order
//	                             Claim serves them (round robin)
//	<s>nsqueued          set     the same namespaces, to add each to the ring once
//	<s>leases            zset    RUNNING task ids scored by lease deadline (Redis TIME, ms)
//	<s>recoverer         hash    last: the last lease recovery run, hold: none before
//	                             (Redis TIME, ms; the outage guard of scriptExpired)
//
// Every key a script touches is declared in its KEYS (lua.go), so a script of a shard
// touches that shard's slot only, and one of functions the deployment's.

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

// keys names keys. The store's own keys value (Store.k) names the deployment-wide keys
// (functions, modules, channels, the shard count) under global; shard(i) returns the keys
// value of task shard i, whose prefix names that shard's queues, leases, ring, usage
// counts and task hashes. With one shard, shard 0's prefix is the global one: the key
// names of an unsharded deployment are those faas always used.
type keys struct {
	prefix string   // this view's prefix: global, or one shard's
	global string   // functions, modules, names, channels, the shard count
	shards []string // the prefix of each task shard (len >= 1)
}

// newKeys returns the keys of a deployment with global prefix p and n task shards. With
// n > 1, shard i's prefix is the hash tag "{NAME:sII}:" (NAME: p without braces and ':'),
// so each shard's keys share one Redis Cluster slot while the shards spread over slots.
func newKeys(p string, n int) keys {
	k := keys{prefix: p, global: p, shards: []string{p}}
	if n > 1 {
		name := strings.Trim(p, "{}:")
		k.shards = make([]string, n)
		for i := range k.shards {
			k.shards[i] = "{" + shardTag(name, i, n) + "}:"
		}
	}
	return k
}

// shardTag is the hash tag of shard i of n: "NAME:sII", or "NAME:sII.J" with the smallest
// J that puts the tag's Redis Cluster slot in the i-th n-th of the slot range. A cluster
// made the usual way (redis-cli --cluster create) gives its masters equal runs of slots, so
// evenly spaced shards spread evenly over the masters; tags hashed anywhere put, in one
// test, 8 of 16 shards on one of 3 masters.
func shardTag(name string, i, n int) string {
	base := fmt.Sprintf("%s:s%02d", name, i)
	lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n
	tag := base
	for j := 1; j < 1<<16; j++ {
		if s := slotOf(tag); s >= lo && s < hi {
			return tag
		}
		tag = base + "." + strconv.Itoa(j)
	}
	return base // unreachable in practice: about n tries find one
}

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// slotOf is the Redis Cluster slot of a key without braces: CRC16 (XMODEM) mod 16384.
func slotOf(key string) int {
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}

// shard returns the keys of task shard i.
func (k keys) shard(i int) keys { return keys{prefix: k.shards[i], global: k.global, shards: k.shards} }

// shardOf is the shard of task id: the last two hex digits of the id (newTaskID puts the
// shard there), modulo the shard count. Any id maps to some shard: an id faas did not make
// is simply not found there.
func (k keys) shardOf(id string) int {
	n := len(k.shards)
	if n == 1 || len(id) < 2 {
		return 0
	}
	v, err := strconv.ParseUint(id[len(id)-2:], 16, 8)
	if err != nil {
		return 0
	}
	return int(v) % n
}

func (k keys) module(hash string) string { return k.global + "module:" + hash }
func (k keys) modref(hash string) string { return k.global + "modref:" + hash }
func (k keys) function(id string) string { return k.global + "function:" + id }
func (k keys) functionPrefix() string    { return k.global + "function:" }
func (k keys) shardCount() string        { return k.global + "shards" }

// task is the hash of task id, in the task's own shard whatever view k is.
func (k keys) task(id string) string { return k.shards[k.shardOf(id)] + "task:" + id }

// taskPrefix is the prefix of this view's task hashes (a shard's view: its own).
func (k keys) taskPrefix() string { return k.prefix + "task:" }

// nsPrefix is the prefix of namespace ns's own keys; the default namespace has today's.
func (k keys) nsPrefix(ns string) string {
	if ns == "" || ns == DefaultNamespace {
		return k.prefix
	}
	return k.prefix + "ns:" + ns + ":"
}

func (k keys) fname(ns, name string) string { return k.globalNS(ns) + "fname:" + name }
func (k keys) functions(ns string) string   { return k.globalNS(ns) + "functions" }

// globalNS is nsPrefix under the global prefix: the namespace's names and function list.
func (k keys) globalNS(ns string) string { return keys{prefix: k.global}.nsPrefix(ns) }
func (k keys) queue() string             { return k.queueOf(DefaultNamespace) }
func (k keys) queueOf(ns string) string  { return k.nsPrefix(ns) + "queue" }
func (k keys) usage(ns string) string    { return k.nsPrefix(ns) + "usage" }
func (k keys) upgraded() string          { return k.global + "upgraded" }
func (k keys) nsRing() string            { return k.prefix + "nsring" }
func (k keys) nsQueued() string          { return k.prefix + "nsqueued" }
func (k keys) nsWeights() string         { return k.prefix + "nsweights" }
func (k keys) nsCredit() string          { return k.prefix + "nscredit" }
func (k keys) leases() string            { return k.prefix + "leases" }
func (k keys) recoverer() string         { return k.prefix + "recoverer" }
func (k keys) active() string            { return k.prefix + "active" }
func (k keys) requeue() string           { return k.prefix + "requeue" }

// shardKeys are the first five KEYS of every script of a task shard, in this order (luaShard
// reads them): leases, active, requeue, nsring, nsqueued; room is made for more.
func (k keys) shardKeys(more int) []string {
	return append(make([]string, 0, 5+more), k.leases(), k.active(), k.requeue(), k.nsRing(), k.nsQueued())
}

// taskKeys appends the hash keys of ids (of this view's shard) to ks.
func (k keys) taskKeys(ks []string, ids ...string) []string {
	for _, id := range ids {
		ks = append(ks, k.prefix+"task:"+id)
	}
	return ks
}
func (k keys) doneChannel() string   { return k.global + "done" }
func (k keys) tasksChannel() string  { return k.global + "tasks" }
func (k keys) cancelChannel() string { return k.global + "cancel" }
func (k keys) evictChannel() string  { return k.global + "evict" }

// Keys that are not a task's own state carry a hash tag of their own and are written by
// plain commands (pipelined from Go), never inside the scripts that touch task and queue
// keys: live.go and logs.go.
func (k keys) liveDispatcher(id string) string { return k.global + "{live}:dispatcher:" + id }
func (k keys) liveIndex() string               { return k.global + "{live}:dispatchers" }
func (k keys) functionLog(fnID string) string  { return k.global + "log:{" + fnID + "}" }

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
