// Package task holds the vocabulary every part of faas shares about a task: its status,
// its limits, what a dispatcher hands to an executor (Task), what comes back (Outcome),
// and why a task failed (Failure, Kind).
//
// It is a leaf package on purpose: it imports nothing of faas, so the store, the server,
// the wire protocol and the workers speak of tasks without pulling in wazero or ZeroMQ.
package task

import "time"

// Status is a task's place in its life: QUEUED → RUNNING → COMPLETED | FAILED.
// A task whose worker was lost goes from RUNNING back to QUEUED.
type Status string

const (
	Queued    Status = "QUEUED"
	Running   Status = "RUNNING"
	Completed Status = "COMPLETED"
	Failed    Status = "FAILED"
)

// Terminal reports whether s is a final state.
func (s Status) Terminal() bool { return s == Completed || s == Failed }

// Task is one run of a function, as handed to an executor.
type Task struct {
	ID         string // task id (uuid)
	FunctionID string // function id (uuid)
	Name       string // the function's name: argv[0] of the module
	ModuleHash string // hex sha256 of the module's bytes
	Input      []byte // stdin
	Limits     Limits // limits with defaults applied
	Attempt    int    // 1 for the first run; fences late results of earlier attempts
}

// Ref names one attempt of a task: enough to complete, re-queue or release it.
type Ref struct {
	ID      string
	Attempt int
}

// Ref returns the task's reference.
func (t Task) Ref() Ref { return Ref{ID: t.ID, Attempt: t.Attempt} }

// Outcome is what running a task produced. Failure nil means COMPLETED.
type Outcome struct {
	Ref
	Stdout   []byte
	Stderr   []byte // tail, capped
	Failure  *Failure
	Duration time.Duration
	Worker   string // who ran it (worker identity, or "local:<dispatcher>")
	// CPUUnits is the guest code the task ran, counted by the sandbox's metering: one unit per
	// function entry and per loop iteration (start section included). The same function and
	// input give the same count on any machine and in any mode; a task stopped by its
	// deadline counts what it ran until then (but for the last iterations of the loops it was
	// in, under 1,024 per active function; so does a trap).
	CPUUnits uint64
}

// Status returns the terminal status the outcome leads to.
func (o Outcome) Status() Status {
	if o.Failure != nil {
		return Failed
	}
	return Completed
}
