package task

import "fmt"

// Limits bound one task. A zero field means "the default" (see DefaultLimits).
type Limits struct {
	TimeoutMs   int64 `json:"timeout_ms,omitempty"`   // wall clock, default 10000
	MemoryMB    int64 `json:"memory_mb,omitempty"`    // linear memory, default 64
	StdoutBytes int64 `json:"stdout_bytes,omitempty"` // captured result, default 4 MiB
	StdinBytes  int64 `json:"stdin_bytes,omitempty"`  // accepted input, default 4 MiB
	// CPUUnits, when set, stops the task (kind cpu_limit) just past CPUUnits units (function
	// entries and loop iterations, see Outcome.CPUUnits; within 1,024 units when in a loop).
	// Zero: no limit, only the deadline. Unlike timeout_ms it is deterministic: the same input
	// stops at the same point on any machine.
	CPUUnits int64 `json:"cpu_units,omitempty"`
}

// DefaultLimits are the limits of a function registered without any.
func DefaultLimits() Limits {
	return Limits{TimeoutMs: 10_000, MemoryMB: 64, StdoutBytes: 4 << 20, StdinBytes: 4 << 20}
}

// MaxLimits are the server's default maximums: a registration asking for more is refused.
func MaxLimits() Limits {
	return Limits{TimeoutMs: 300_000, MemoryMB: 1024, StdoutBytes: 64 << 20, StdinBytes: 64 << 20}
}

// WithDefaults returns l with every zero field set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.TimeoutMs == 0 {
		l.TimeoutMs = d.TimeoutMs
	}
	if l.MemoryMB == 0 {
		l.MemoryMB = d.MemoryMB
	}
	if l.StdoutBytes == 0 {
		l.StdoutBytes = d.StdoutBytes
	}
	if l.StdinBytes == 0 {
		l.StdinBytes = d.StdinBytes
	}
	return l
}

// LimitError says which limit a request got wrong.
type LimitError struct {
	Name  string // the contract's name: timeout_ms, memory_mb, stdout_bytes, stdin_bytes
	Value int64
	Max   int64 // 0 when the value is negative rather than too large
}

func (e *LimitError) Error() string {
	if e.Value < 0 {
		return fmt.Sprintf("limit %s is %d; it must not be negative", e.Name, e.Value)
	}
	return fmt.Sprintf("limit %s is %d, above the server's maximum of %d", e.Name, e.Value, e.Max)
}

// Check returns a *LimitError for the first field of l that is negative or above max.
// Zero fields are fine: they mean the default.
func (l Limits) Check(max Limits) error {
	for _, f := range []struct {
		name     string
		val, max int64
	}{
		{"timeout_ms", l.TimeoutMs, max.TimeoutMs},
		{"memory_mb", l.MemoryMB, max.MemoryMB},
		{"stdout_bytes", l.StdoutBytes, max.StdoutBytes},
		{"stdin_bytes", l.StdinBytes, max.StdinBytes},
		{"cpu_units", l.CPUUnits, max.CPUUnits},
	} {
		if f.val < 0 || (f.max > 0 && f.val > f.max) {
			return &LimitError{Name: f.name, Value: f.val, Max: f.max}
		}
	}
	return nil
}
