package protocol

import (
	"encoding/binary"
	"faas/task"
	"time"
)

// This file encodes messages into frames: Append for each message type, and Encode.

// Frame counts of the repeated groups.
const (
	taskFrames    = 7 // id, attempt, function id, name, hash, limits, input
	outcomeFrames = 7 // id, attempt, kind, message, duration, stdout, stderr
	refFrames     = 2 // id, attempt
	limitsSize    = 32
)

var versionFrame = []byte{Version}

// typeFrames holds one shared, never-modified frame per type.
var typeFrames = func() (f [256][]byte) {
	for i := range f {
		f[i] = []byte{byte(i)}
	}
	return f
}()

func head(dst [][]byte, t Type) [][]byte { return append(dst, versionFrame, typeFrames[t]) }

func u32(v int) []byte {
	if v < 0 {
		v = 0
	}
	return binary.BigEndian.AppendUint32(nil, uint32(min(v, 1<<32-1)))
}

func u64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func appendRefs(dst [][]byte, refs []task.Ref) [][]byte {
	for _, r := range refs {
		dst = append(dst, []byte(r.ID), u32(r.Attempt))
	}
	return dst
}

func (m Registration) Append(dst [][]byte) [][]byte {
	return append(head(dst, m.Type()), []byte(m.Worker), []byte(string(m.Mode)), u32(m.Capacity), u32(m.Running))
}

func (m Ack) Append(dst [][]byte) [][]byte {
	return append(head(dst, m.Type()), []byte(m.Session),
		u32(int(m.HeartbeatInterval/time.Millisecond)), u32(int(m.HeartbeatTimeout/time.Millisecond)))
}

func (m RequestTask) Append(dst [][]byte) [][]byte {
	return append(head(dst, m.Type()), []byte(m.Worker), u32(m.Want))
}

func (m NoTask) Append(dst [][]byte) [][]byte { return head(dst, m.Type()) }

func (m NewTask) Append(dst [][]byte) [][]byte {
	dst = head(dst, m.Type())
	for i := range m.Tasks {
		t := &m.Tasks[i]
		lim := make([]byte, 0, limitsSize+8)
		lim = binary.BigEndian.AppendUint64(lim, uint64(t.Limits.TimeoutMs))
		lim = binary.BigEndian.AppendUint64(lim, uint64(t.Limits.MemoryMB))
		lim = binary.BigEndian.AppendUint64(lim, uint64(t.Limits.StdoutBytes))
		lim = binary.BigEndian.AppendUint64(lim, uint64(t.Limits.StdinBytes))
		if t.Limits.CPUUnits != 0 { // only then: workers older than cpu_units read 32 bytes
			lim = binary.BigEndian.AppendUint64(lim, uint64(t.Limits.CPUUnits))
		}
		dst = append(dst, []byte(t.ID), u32(t.Attempt), []byte(t.FunctionID), []byte(t.Name),
			[]byte(t.ModuleHash), lim, t.Input)
	}
	return dst
}

func (m ResultReady) Append(dst [][]byte) [][]byte {
	dst = append(head(dst, m.Type()), []byte(m.Worker))
	for i := range m.Outcomes {
		o := &m.Outcomes[i]
		var kind, msg []byte
		if o.Failure != nil {
			kind, msg = []byte(o.Failure.Kind), []byte(o.Failure.Message)
			if len(kind) == 0 {
				kind = []byte(task.KindInternal)
			}
		}
		// The timing frame: duration ns, then cpu units (docs/PROTOCOL.md: 8 or 16 bytes).
		cost := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(o.Duration)), o.CPUUnits)
		dst = append(dst, []byte(o.ID), u32(o.Attempt), kind, msg, cost, o.Stdout, o.Stderr)
	}
	return dst
}

func (m Heartbeat) Append(dst [][]byte) [][]byte {
	sender := m.Sender
	if isToken(m.Token) {
		sender += " " + m.Token
	}
	return appendRefs(append(head(dst, m.Type()), []byte(sender)), m.Held)
}

func (m ModuleRequest) Append(dst [][]byte) [][]byte {
	return append(head(dst, m.Type()), []byte(m.Worker), []byte(m.Hash))
}

func (m Module) Append(dst [][]byte) [][]byte {
	return append(head(dst, m.Type()), []byte(m.Hash), []byte(m.Err), m.Wasm)
}

func (m Release) Append(dst [][]byte) [][]byte {
	return appendRefs(append(head(dst, m.Type()), []byte(m.Worker)), m.Refs)
}

func (m Bye) Append(dst [][]byte) [][]byte {
	return append(head(dst, m.Type()), []byte(m.Sender))
}

func (m Error) Append(dst [][]byte) [][]byte {
	return append(head(dst, m.Type()), []byte(m.Code), []byte(m.Text))
}

func (m Cancel) Append(dst [][]byte) [][]byte {
	return appendRefs(head(dst, m.Type()), m.Refs)
}

func (m Evict) Append(dst [][]byte) [][]byte {
	dst = head(dst, m.Type())
	for _, h := range m.Hashes {
		dst = append(dst, []byte(h))
	}
	return dst
}

// Encode returns m's frames.
func Encode(m Message) [][]byte { return m.Append(nil) }
