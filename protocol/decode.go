package protocol

import (
	"encoding/binary"
	"faas/task"
	"fmt"
	"time"
)

// This file decodes frames into messages: Decode, and the bounds-checked reader it uses.

// Decode parses one message body ([version][type][fields...], without any routing
// envelope). The result aliases frames.
func Decode(frames [][]byte) (Message, error) {
	if len(frames) < 2 {
		return nil, fmt.Errorf("%w: %d frames, want at least 2", ErrMalformed, len(frames))
	}
	if len(frames[0]) != 1 {
		return nil, fmt.Errorf("%w: version frame of %d bytes", ErrMalformed, len(frames[0]))
	}
	if frames[0][0] != Version {
		return nil, fmt.Errorf("%w: got %d, speak %d", ErrVersion, frames[0][0], Version)
	}
	if len(frames[1]) != 1 {
		return nil, fmt.Errorf("%w: type frame of %d bytes", ErrMalformed, len(frames[1]))
	}
	t := Type(frames[1][0])
	f := frames[2:]
	d := decoder{t: t, f: f}
	var m Message
	switch t {
	case TypeRegistration:
		d.want(4)
		m = Registration{Worker: d.str(0), Mode: Mode(d.str(1)), Capacity: d.int32(2), Running: d.int32(3)}
	case TypeAck:
		d.want(3)
		m = Ack{Session: d.str(0),
			HeartbeatInterval: time.Duration(d.int32(1)) * time.Millisecond,
			HeartbeatTimeout:  time.Duration(d.int32(2)) * time.Millisecond}
	case TypeRequestTask:
		d.want(2)
		m = RequestTask{Worker: d.str(0), Want: d.int32(1)}
	case TypeNoTask:
		d.want(0)
		m = NoTask{}
	case TypeNewTask:
		m = NewTask{Tasks: d.tasks()}
	case TypeResultReady:
		d.atLeast(1)
		m = ResultReady{Worker: d.str(0), Outcomes: d.outcomes(1)}
	case TypeHeartbeat:
		d.atLeast(1)
		sender, token := splitToken(d.str(0))
		m = Heartbeat{Sender: sender, Token: token, Held: d.refs(1)}
	case TypeModuleRequest:
		d.want(2)
		m = ModuleRequest{Worker: d.str(0), Hash: d.str(1)}
	case TypeModule:
		d.want(3)
		m = Module{Hash: d.str(0), Err: d.str(1), Wasm: d.bytes(2)}
	case TypeRelease:
		d.atLeast(1)
		m = Release{Worker: d.str(0), Refs: d.refs(1)}
	case TypeBye:
		d.want(1)
		m = Bye{Sender: d.str(0)}
	case TypeError:
		d.want(2)
		m = Error{Code: d.str(0), Text: d.str(1)}
	case TypeCancel:
		// At least one ref, none with an empty id: a CANCEL names what to stop.
		d.atLeast(refFrames)
		c := Cancel{Refs: d.refs(0)}
		for i, r := range c.Refs {
			if r.ID == "" {
				d.fail("ref %d: empty id", i)
			}
		}
		m = c
	case TypeEvict:
		m = Evict{Hashes: d.hashes()}
	default:
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, byte(t))
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// decoder reads fields with bounds checks; the first problem sticks in err and later
// reads return zero values, so a message decodes with straight-line code.
type decoder struct {
	t   Type
	f   [][]byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrMalformed, d.t, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) want(n int) {
	if len(d.f) != n {
		d.fail("%d fields, want %d", len(d.f), n)
	}
}

func (d *decoder) atLeast(n int) {
	if len(d.f) < n {
		d.fail("%d fields, want at least %d", len(d.f), n)
	}
}

func (d *decoder) bytes(i int) []byte {
	if d.err != nil || i >= len(d.f) {
		return nil
	}
	return d.f[i]
}

func (d *decoder) str(i int) string { return string(d.bytes(i)) }

func (d *decoder) int32(i int) int {
	b := d.bytes(i)
	if d.err != nil {
		return 0
	}
	if len(b) != 4 {
		d.fail("field %d: integer of %d bytes, want 4", i, len(b))
		return 0
	}
	return int(binary.BigEndian.Uint32(b))
}

func (d *decoder) int64(i int) int64 {
	b := d.bytes(i)
	if d.err != nil {
		return 0
	}
	if len(b) != 8 {
		d.fail("field %d: integer of %d bytes, want 8", i, len(b))
		return 0
	}
	v := int64(binary.BigEndian.Uint64(b))
	if v < 0 {
		d.fail("field %d: negative value", i)
		return 0
	}
	return v
}

// cost reads an outcome's timing frame: duration ns u64, then cpu units u64. A frame of 8
// bytes (a worker from before cpu units) has no units: 0.
func (d *decoder) cost(i int) (time.Duration, uint64) {
	b := d.bytes(i)
	if d.err != nil {
		return 0, 0
	}
	if len(b) != 8 && len(b) != 16 {
		d.fail("field %d: timing of %d bytes, want 8 or 16", i, len(b))
		return 0, 0
	}
	dur := int64(binary.BigEndian.Uint64(b))
	if dur < 0 {
		d.fail("field %d: negative duration", i)
		return 0, 0
	}
	var units uint64
	if len(b) == 16 {
		units = binary.BigEndian.Uint64(b[8:])
	}
	return time.Duration(dur), units
}

func (d *decoder) groups(from, size int) int {
	n := len(d.f) - from
	if n < 0 || n%size != 0 {
		d.fail("%d fields after the header, not a multiple of %d", n, size)
		return 0
	}
	return n / size
}

func (d *decoder) tasks() []task.Task {
	n := d.groups(0, taskFrames)
	if n == 0 {
		if d.err == nil {
			d.fail("no task")
		}
		return nil
	}
	ts := make([]task.Task, n)
	for i := range ts {
		b := i * taskFrames
		lim := d.bytes(b + 5)
		if d.err == nil && len(lim) != limitsSize && len(lim) != limitsSize+8 {
			d.fail("task %d: limits of %d bytes, want %d or %d", i, len(lim), limitsSize, limitsSize+8)
		}
		if d.err != nil {
			return nil
		}
		l := task.Limits{
			TimeoutMs:   int64(binary.BigEndian.Uint64(lim[0:])),
			MemoryMB:    int64(binary.BigEndian.Uint64(lim[8:])),
			StdoutBytes: int64(binary.BigEndian.Uint64(lim[16:])),
			StdinBytes:  int64(binary.BigEndian.Uint64(lim[24:])),
		}
		if len(lim) > limitsSize {
			l.CPUUnits = int64(binary.BigEndian.Uint64(lim[limitsSize:]))
		}
		if l.TimeoutMs < 0 || l.MemoryMB < 0 || l.StdoutBytes < 0 || l.StdinBytes < 0 || l.CPUUnits < 0 {
			d.fail("task %d: negative limit", i)
			return nil
		}
		ts[i] = task.Task{ID: d.str(b), Attempt: d.int32(b + 1), FunctionID: d.str(b + 2),
			Name: d.str(b + 3), ModuleHash: d.str(b + 4), Limits: l, Input: d.bytes(b + 6)}
		if d.err == nil && ts[i].ID == "" {
			d.fail("task %d: empty id", i)
		}
	}
	return ts
}

func (d *decoder) outcomes(from int) []task.Outcome {
	n := d.groups(from, outcomeFrames)
	if n == 0 || d.err != nil {
		return nil
	}
	os := make([]task.Outcome, n)
	for i := range os {
		b := from + i*outcomeFrames
		o := &os[i]
		o.ID, o.Attempt = d.str(b), d.int32(b+1)
		if kind := d.bytes(b + 2); len(kind) > 0 {
			o.Failure = &task.Failure{Kind: task.Kind(kind), Message: d.str(b + 3)}
		}
		o.Duration, o.CPUUnits = d.cost(b + 4)
		o.Stdout, o.Stderr = d.bytes(b+5), d.bytes(b+6)
		if d.err != nil {
			return nil
		}
		if o.ID == "" {
			d.fail("outcome %d: empty id", i)
			return nil
		}
	}
	return os
}

func (d *decoder) refs(from int) []task.Ref {
	n := d.groups(from, refFrames)
	if n == 0 || d.err != nil {
		return nil
	}
	rs := make([]task.Ref, n)
	for i := range rs {
		b := from + i*refFrames
		rs[i] = task.Ref{ID: d.str(b), Attempt: d.int32(b + 1)}
	}
	if d.err != nil {
		return nil
	}
	return rs
}

// hashes reads EVICT's fields: 1 to MaxEvictHashes module hashes of 1 to maxHashBytes bytes.
func (d *decoder) hashes() []string {
	if len(d.f) == 0 || len(d.f) > MaxEvictHashes {
		d.fail("%d hashes, want 1 to %d", len(d.f), MaxEvictHashes)
		return nil
	}
	hs := make([]string, len(d.f))
	for i, f := range d.f {
		if len(f) == 0 || len(f) > maxHashBytes {
			d.fail("hash %d of %d bytes, want 1 to %d", i, len(f), maxHashBytes)
			return nil
		}
		hs[i] = string(f)
	}
	return hs
}
