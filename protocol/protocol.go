// Package protocol is the wire protocol between a dispatcher and its remote workers: the
// messages, their encoding as ZeroMQ multipart frames, and the protocol version.
//
// Every message body is [version][type][fields...]: one frame holding the version byte, one
// frame holding the type byte, then the message's fields, one frame each. Raw bytes (task
// inputs, outputs, module bytes) travel as their own frames, never escaped. Integers are
// big-endian binary frames of a fixed size. Messages that repeat a group of fields (tasks in
// NEW_TASK, outcomes in RESULT_READY, task references in HEARTBEAT and RELEASE) put the groups
// one after the other; the count is implied by the number of frames.
//
// Decode never panics: a frame sequence that is not a well-formed message of this version is
// an error wrapping ErrMalformed or ErrVersion. The decoded message aliases the frames'
// bytes (no copy): callers own the frames they pass in.
//
// docs/PROTOCOL.md documents every message and the exchange of each mode.
package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"faas/task"
)

// Version is the protocol version this package speaks. A message with another version is
// refused with ErrVersion (and answered with an ERROR of code CodeBadVersion).
const Version byte = 1

// Type is a message type: the one byte of a message's second frame.
type Type byte

const (
	TypeRegistration  Type = 1  // worker → dispatcher: here I am, with my capacity
	TypeAck           Type = 2  // dispatcher → worker: registered; heartbeat settings
	TypeRequestTask   Type = 3  // pull worker → dispatcher (REQ): give me up to N tasks
	TypeNoTask        Type = 4  // dispatcher → pull worker (REQ reply): nothing for you
	TypeNewTask       Type = 5  // dispatcher → worker: tasks to run
	TypeResultReady   Type = 6  // worker → dispatcher: outcomes of finished tasks
	TypeHeartbeat     Type = 7  // both ways: I am alive (worker's carries the tasks it holds)
	TypeModuleRequest Type = 8  // worker → dispatcher: send me the module with this hash
	TypeModule        Type = 9  // dispatcher → worker: a module's bytes (or why not)
	TypeRelease       Type = 10 // worker → dispatcher: tasks handed back, not run
	TypeBye           Type = 11 // both ways: I am stopping; send me no more work
	TypeError         Type = 12 // dispatcher → worker: your message was refused
)

var typeNames = [...]string{
	TypeRegistration:  "REGISTRATION",
	TypeAck:           "ACK",
	TypeRequestTask:   "REQUEST_TASK",
	TypeNoTask:        "NO_TASK",
	TypeNewTask:       "NEW_TASK",
	TypeResultReady:   "RESULT_READY",
	TypeHeartbeat:     "HEARTBEAT",
	TypeModuleRequest: "MODULE_REQUEST",
	TypeModule:        "MODULE",
	TypeRelease:       "RELEASE",
	TypeBye:           "BYE",
	TypeError:         "ERROR",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// Error codes carried by ERROR messages.
const (
	// CodeUnknownWorker: the dispatcher does not know the sender (it restarted, or declared
	// the worker dead). The worker registers again.
	CodeUnknownWorker = "unknown_worker"
	// CodeBadVersion: the message's version is not the dispatcher's.
	CodeBadVersion = "bad_version"
	// CodeMalformed: the message could not be decoded.
	CodeMalformed = "malformed"
)

var (
	// ErrMalformed: the frames are not a well-formed message.
	ErrMalformed = errors.New("malformed message")
	// ErrVersion: the message is of another protocol version.
	ErrVersion = errors.New("unsupported protocol version")
)

// Message is any message of this package.
type Message interface {
	Type() Type
	// Append appends the message's frames ([version][type][fields...]) to dst.
	Append(dst [][]byte) [][]byte
}

// Registration announces a worker and how many tasks it runs at once. Running is how many
// tasks it still runs from before (after a dispatcher restart): they count against Capacity.
type Registration struct {
	Worker   string
	Mode     Mode // ModePull or ModePush
	Capacity int
	Running  int
}

// Ack accepts a registration. Session names this run of the dispatcher: a worker that
// sees it change knows the dispatcher restarted. Heartbeat settings are the dispatcher's.
type Ack struct {
	Session           string
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
}

// RequestTask asks for up to Want tasks (a pull worker's free slots).
type RequestTask struct {
	Worker string
	Want   int
}

// NoTask answers a held RequestTask without work (the dispatcher stops, or the worker leaves).
type NoTask struct{}

// NewTask hands tasks to a worker.
type NewTask struct {
	Tasks []task.Task
}

// ResultReady carries finished tasks' outcomes.
type ResultReady struct {
	Worker   string
	Outcomes []task.Outcome
}

// Heartbeat says the sender is alive. From a worker, Held lists the tasks it holds (queued
// or running); Sender is the worker id or the dispatcher's session.
type Heartbeat struct {
	Sender string
	Held   []task.Ref
}

// ModuleRequest asks for a module's bytes by hash.
type ModuleRequest struct {
	Worker string
	Hash   string
}

// Module answers a ModuleRequest: the bytes, or Err saying why there are none.
type Module struct {
	Hash string
	Err  string
	Wasm []byte
}

// Release hands tasks back unrun (the worker is stopping, or was sent more than it can run).
type Release struct {
	Worker string
	Refs   []task.Ref
}

// Bye says the sender stops: from a worker, send it no more work; from a dispatcher,
// register again later (Sender is the worker id or the dispatcher's session).
type Bye struct {
	Sender string
}

// Error refuses a message.
type Error struct {
	Code string
	Text string
}

func (Registration) Type() Type  { return TypeRegistration }
func (Ack) Type() Type           { return TypeAck }
func (RequestTask) Type() Type   { return TypeRequestTask }
func (NoTask) Type() Type        { return TypeNoTask }
func (NewTask) Type() Type       { return TypeNewTask }
func (ResultReady) Type() Type   { return TypeResultReady }
func (Heartbeat) Type() Type     { return TypeHeartbeat }
func (ModuleRequest) Type() Type { return TypeModuleRequest }
func (Module) Type() Type        { return TypeModule }
func (Release) Type() Type       { return TypeRelease }
func (Bye) Type() Type           { return TypeBye }
func (Error) Type() Type         { return TypeError }

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
		lim := make([]byte, 0, limitsSize)
		lim = binary.BigEndian.AppendUint64(lim, uint64(t.Limits.TimeoutMs))
		lim = binary.BigEndian.AppendUint64(lim, uint64(t.Limits.MemoryMB))
		lim = binary.BigEndian.AppendUint64(lim, uint64(t.Limits.StdoutBytes))
		lim = binary.BigEndian.AppendUint64(lim, uint64(t.Limits.StdinBytes))
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
		dst = append(dst, []byte(o.ID), u32(o.Attempt), kind, msg, u64(int64(o.Duration)), o.Stdout, o.Stderr)
	}
	return dst
}

func (m Heartbeat) Append(dst [][]byte) [][]byte {
	return appendRefs(append(head(dst, m.Type()), []byte(m.Sender)), m.Held)
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

// Encode returns m's frames.
func Encode(m Message) [][]byte { return m.Append(nil) }

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
		m = Heartbeat{Sender: d.str(0), Held: d.refs(1)}
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
		if d.err == nil && len(lim) != limitsSize {
			d.fail("task %d: limits of %d bytes, want %d", i, len(lim), limitsSize)
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
		if l.TimeoutMs < 0 || l.MemoryMB < 0 || l.StdoutBytes < 0 || l.StdinBytes < 0 {
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
		o.Duration = time.Duration(d.int64(b + 4))
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

// SplitEnvelope splits a message received on a ROUTER into its routing envelope (every
// frame up to and including the first empty delimiter) and its body. Workers' REQ sockets
// add the delimiter themselves (and a request id before it, with REQ_CORRELATE); DEALER
// workers send an empty first frame so that both look alike. ok is false when there is no
// delimiter.
func SplitEnvelope(frames [][]byte) (env, body [][]byte, ok bool) {
	for i, f := range frames {
		if len(f) == 0 {
			return frames[:i+1], frames[i+1:], i > 0
		}
	}
	return nil, nil, false
}

// Delimiter is the empty frame DEALER workers put before a message body.
var Delimiter = [][]byte{{}}
