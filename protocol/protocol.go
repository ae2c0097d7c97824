// Package protocol is the wire protocol between a dispatcher and its remote workers: the
// messages, their encoding as ZeroMQ multipart frames, and the protocol version.
//
// Every message body is [version][type][fields...]: one frame holding the version byte, one
// frame holding the type byte, then the message's fields, one frame each. Raw bytes (task
// inputs, outputs, module bytes) travel as their own frames, never escaped. Integers are
// big-endian binary frames of a fixed size. Messages that repeat a group of fields (tasks in
// NEW_TASK, outcomes in RESULT_READY, task references in HEARTBEAT, RELEASE and CANCEL) put the groups
// one after the other; the count is implied by the number of frames.
//
// Decode never panics: a frame sequence that is not a well-formed message of this version is
// an error wrapping ErrMalformed or ErrVersion. The decoded message aliases the frames'
// bytes (no copy): callers own the frames they pass in.
//
// docs/PROTOCOL.md documents every message and the exchange of each mode.
package protocol

import (
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
	TypeCancel        Type = 13 // dispatcher → worker: stop these tasks, they were cancelled
	TypeEvict         Type = 14 // dispatcher → worker: forget these modules (their last function was deleted)
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
	TypeCancel:        "CANCEL",
	TypeEvict:         "EVICT",
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
	// CodeUnauthorized: the worker's key was removed from the dispatcher's allow-list. The
	// worker stops: registering again would be refused.
	CodeUnauthorized = "unauthorized"
	// CodeWrongMode: the worker registered in the other mode (push at a pull dispatcher, or
	// the reverse). The worker stops: it would be refused again.
	CodeWrongMode = "wrong_mode"
)

// MaxMessageBytes bounds one frame on every dispatcher↔worker socket (ZMQ_MAXMSGSIZE, both
// sides): the server's largest input or result (task.MaxLimits, 64 MiB) and module (32 MiB
// by default) plus 1 MiB for the other fields. A peer that sends a larger frame is
// disconnected by libzmq before the frame is allocated. Senders split their messages so
// that each stays under it.
const MaxMessageBytes = 64<<20 + 1<<20

// MaxFrames bounds the frames of one message: a peer's RESULT_READY, HEARTBEAT or RELEASE
// carries at most one group per slot of a registration (1,024), the largest group being an
// outcome of 7 frames. A receiver drops a longer message unread (a heartbeat listing a
// million refs cost a dispatcher 1.2 GB before the bound).
const MaxFrames = 8 << 10

// MaxMessageTotal bounds the bytes of one whole message (every frame): senders split their
// messages by size under MaxMessageBytes; one more MiB for envelopes and small frames.
const MaxMessageTotal = MaxMessageBytes + 1<<20

// Routing ids: a worker names its DEALER "d"+S and its REQ "r"+S, S being random and never
// sent in a message, so that the dispatcher can tell which REQ belongs to which registered
// DEALER without trusting any field of a message (and the names survive reconnections).
const (
	RouteControl byte = 'd'
	RouteRequest byte = 'r'
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
//
// Token: from a dispatcher, a fresh random token (TokenLen lowercase hex digits); from a
// worker, the token of the last dispatcher HEARTBEAT it read. One connection keeps order, so
// a worker that echoes a token has read everything sent to it before that token: the
// dispatcher's proof that module bytes it queued were read (docs/PROTOCOL.md). It travels
// in the sender frame, after a space ("w1 0123456789abcdef"), so that peers without tokens
// read the message as before.
type Heartbeat struct {
	Sender string
	Token  string
	Held   []task.Ref
}

// TokenLen is the length of a heartbeat token.
const TokenLen = 16

// splitToken splits a heartbeat's sender frame into sender and token.
func splitToken(frame string) (sender, token string) {
	i := len(frame) - TokenLen - 1
	if i < 0 || frame[i] != ' ' || !isToken(frame[i+1:]) {
		return frame, ""
	}
	return frame[:i], frame[i+1:]
}

func isToken(s string) bool {
	if len(s) != TokenLen {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
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

// Cancel tells a worker to stop tasks it was sent: they were cancelled (their record says
// FAILED cancelled already). The worker stops each one it runs at that attempt, reports it
// in RESULT_READY with kind cancelled, and ignores the others.
type Cancel struct {
	Refs []task.Ref
}

// ModuleWindow is the window of a dispatcher's module allowance: a connection is sent each
// module once per window (twice after registering again) and a bounded number of bytes of
// modules (docs/PROTOCOL.md).
const ModuleWindow = 10 * time.Second

// ModuleRetryLater starts the error of a MODULE refused for the allowance: the worker asks
// again after ModuleWindow instead of failing the tasks that wait for the module.
const ModuleRetryLater = "retry later: "

// MaxEvictHashes bounds the hashes of one EVICT: a sender splits a longer list.
const MaxEvictHashes = 1024

// maxHashBytes bounds one hash of EVICT: the lowercase hex sha256 is 64 bytes.
const maxHashBytes = 64

// Evict tells a worker that modules are gone (their last function was deleted): drop them
// from every cache. A hash the worker does not hold is no error.
type Evict struct {
	Hashes []string
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
func (Cancel) Type() Type        { return TypeCancel }
func (Evict) Type() Type         { return TypeEvict }
