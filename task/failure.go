package task

// Kind is the kind of a task's failure, as the REST contract names it (error.kind).
type Kind string

// The failure kinds. This is the one list: the sandbox produces the first six and KindCPULimit, the store's
// lease recovery produces KindWorkerLost, a cancel produces KindCancelled, and everything else (metrics labels, the Lua
// scripts' arguments, clients, samples) takes them from here.
const (
	KindTimeout        Kind = "timeout"          // ran past timeout_ms
	KindOutOfMemory    Kind = "out_of_memory"    // asked for more than memory_mb
	KindTrap           Kind = "trap"             // a Wasm trap, stack overflow included
	KindExit           Kind = "exit"             // exited with a non-zero code
	KindOutputTooLarge Kind = "output_too_large" // wrote more than stdout_bytes
	KindInternal       Kind = "internal"         // the platform could not run it (module unavailable...)
	KindCPULimit       Kind = "cpu_limit"        // used more than its cpu_units (off unless set)

	// KindWorkerLost is not a sandbox outcome: the dispatcher's lease recovery gives it to a
	// task whose workers kept dying until its attempts ran out.
	KindWorkerLost Kind = "worker_lost"

	// KindCancelled is not a sandbox outcome either: a task cancelled by a request
	// (POST /tasks/{id}/cancel) while QUEUED or RUNNING ends FAILED with it.
	KindCancelled Kind = "cancelled"
)

// Kinds lists every failure kind, in the order of the constants above.
var Kinds = []Kind{KindTimeout, KindOutOfMemory, KindTrap, KindExit, KindOutputTooLarge, KindInternal, KindCPULimit, KindWorkerLost, KindCancelled}

// Known reports whether k is one of Kinds.
func (k Kind) Known() bool {
	for _, x := range Kinds {
		if k == x {
			return true
		}
	}
	return false
}

// Failure is why a task failed: {kind, message} in the store, in the REST answer, in the
// Go client and in a batch output line. It is a task's result, not an error of the platform.
type Failure struct {
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
}

// Error renders the failure as the contract's readable text "<kind>: <message>".
func (f *Failure) Error() string { return string(f.Kind) + ": " + f.Message }
