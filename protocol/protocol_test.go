package protocol

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"faas/task"
)

func sampleMessages() map[string]Message {
	lim := task.Limits{TimeoutMs: 10_000, MemoryMB: 64, StdoutBytes: 4 << 20, StdinBytes: 1 << 40}
	return map[string]Message{
		"registration": Registration{Worker: "host-1-abc", Mode: "pull", Capacity: 8, Running: 2},
		"ack":          Ack{Session: "s1", HeartbeatInterval: time.Second, HeartbeatTimeout: 4 * time.Second},
		"request":      RequestTask{Worker: "w", Want: 3},
		"no task":      NoTask{},
		"new task": NewTask{Tasks: []task.Task{
			{ID: "t1", FunctionID: "f1", Name: "double", ModuleHash: "ab12", Input: []byte("21"), Limits: lim, Attempt: 1},
			{ID: "t2", FunctionID: "f1", Name: "double", ModuleHash: "ab12", Input: []byte{0, 1, 0xff, 0}, Limits: lim, Attempt: 3},
			{ID: "t3", FunctionID: "f2", Name: "noop", ModuleHash: "cd", Input: []byte{}, Limits: lim, Attempt: 2},
			{ID: "t4", FunctionID: "f3", Name: "spin", ModuleHash: "ef", Input: []byte{}, Limits: task.Limits{TimeoutMs: 5, CPUUnits: 1_000_000}, Attempt: 1},
		}},
		"result": ResultReady{Worker: "w", Outcomes: []task.Outcome{
			{Ref: task.Ref{ID: "t1", Attempt: 1}, Stdout: []byte("42"), Stderr: []byte{}, Duration: 1500 * time.Microsecond, CPUUnits: 242_807},
			{Ref: task.Ref{ID: "t2", Attempt: 3}, Stdout: []byte{}, Stderr: []byte("oops\x00"),
				Failure: &task.Failure{Kind: task.KindTrap, Message: "unreachable"}},
		}},
		"heartbeat":       Heartbeat{Sender: "w", Held: []task.Ref{{ID: "t1", Attempt: 1}, {ID: "t2", Attempt: 2}}},
		"heartbeat none":  Heartbeat{Sender: "session"},
		"heartbeat token": Heartbeat{Sender: "w 1", Token: "0123456789abcdef", Held: []task.Ref{{ID: "t1", Attempt: 1}}},
		"module request":  ModuleRequest{Worker: "w", Hash: "ab12"},
		"module":          Module{Hash: "ab12", Wasm: []byte("\x00asm\x01\x00\x00\x00")},
		"module missing":  Module{Hash: "ab12", Err: "not found", Wasm: []byte{}},
		"release":         Release{Worker: "w", Refs: []task.Ref{{ID: "t9", Attempt: 1}}},
		"bye":             Bye{Sender: "w"},
		"error":           Error{Code: CodeUnknownWorker, Text: "register again"},
		"evict":           Evict{Hashes: []string{"ab12", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
		"cancel":          Cancel{Refs: []task.Ref{{ID: "t1", Attempt: 1}, {ID: "t7", Attempt: 2}}},
	}
}

// normalize makes nil and empty byte slices compare equal: frames of length 0 decode as
// empty, not nil.
func normalize(m Message) Message {
	switch v := m.(type) {
	case NewTask:
		ts := append([]task.Task(nil), v.Tasks...)
		for i := range ts {
			if ts[i].Input == nil {
				ts[i].Input = []byte{}
			}
		}
		return NewTask{Tasks: ts}
	case ResultReady:
		os := append([]task.Outcome(nil), v.Outcomes...)
		for i := range os {
			if os[i].Stdout == nil {
				os[i].Stdout = []byte{}
			}
			if os[i].Stderr == nil {
				os[i].Stderr = []byte{}
			}
		}
		return ResultReady{Worker: v.Worker, Outcomes: os}
	case Module:
		if v.Wasm == nil {
			v.Wasm = []byte{}
		}
		return v
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	for name, m := range sampleMessages() {
		t.Run(name, func(t *testing.T) {
			frames := Encode(m)
			if frames[0][0] != Version || Type(frames[1][0]) != m.Type() {
				t.Fatalf("header = %v %v", frames[0], frames[1])
			}
			got, err := Decode(frames)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(m)) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, m)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	v, reg := []byte{Version}, []byte{byte(TypeRegistration)}
	cases := []struct {
		name   string
		frames [][]byte
		want   error
	}{
		{"empty", nil, ErrMalformed},
		{"one frame", [][]byte{v}, ErrMalformed},
		{"other version", [][]byte{{Version + 1}, reg, []byte("w"), []byte("pull"), u32(1), u32(0)}, ErrVersion},
		{"long version frame", [][]byte{{Version, 0}, reg}, ErrMalformed},
		{"unknown type", [][]byte{v, {200}}, ErrMalformed},
		{"long type frame", [][]byte{v, {1, 1}}, ErrMalformed},
		{"missing field", [][]byte{v, reg, []byte("w"), []byte("pull"), u32(1)}, ErrMalformed},
		{"short integer", [][]byte{v, reg, []byte("w"), []byte("pull"), {1}, u32(0)}, ErrMalformed},
		{"no tasks", [][]byte{v, {byte(TypeNewTask)}}, ErrMalformed},
		{"partial task", append([][]byte{v, {byte(TypeNewTask)}}, Encode(sampleMessages()["new task"])[2:8]...), ErrMalformed},
		{"short limits", [][]byte{v, {byte(TypeNewTask)}, []byte("t"), u32(1), nil, nil, nil, {1, 2}, nil}, ErrMalformed},
		{"empty task id", [][]byte{v, {byte(TypeNewTask)}, nil, u32(1), nil, nil, nil, make([]byte, limitsSize), nil}, ErrMalformed},
		{"negative duration", [][]byte{v, {byte(TypeResultReady)}, []byte("w"), []byte("t"), u32(1), nil, nil, u64(-1), nil, nil}, ErrMalformed},
		{"timing of 12 bytes", [][]byte{v, {byte(TypeResultReady)}, []byte("w"), []byte("t"), u32(1), nil, nil, make([]byte, 12), nil, nil}, ErrMalformed},
		{"limits of 36 bytes", [][]byte{v, {byte(TypeNewTask)}, []byte("t"), u32(1), nil, nil, nil, make([]byte, limitsSize+4), nil}, ErrMalformed},
		{"evict of nothing", [][]byte{v, {byte(TypeEvict)}}, ErrMalformed},
		{"evict of an empty hash", [][]byte{v, {byte(TypeEvict)}, []byte("ab"), nil}, ErrMalformed},
		{"evict of a long hash", [][]byte{v, {byte(TypeEvict)}, make([]byte, maxHashBytes+1)}, ErrMalformed},
		{"evict of too many hashes", append([][]byte{v, {byte(TypeEvict)}}, repeatFrame([]byte("ab"), MaxEvictHashes+1)...), ErrMalformed},
		{"odd refs", [][]byte{v, {byte(TypeHeartbeat)}, []byte("w"), []byte("t")}, ErrMalformed},
		{"cancel of nothing", [][]byte{v, {byte(TypeCancel)}}, ErrMalformed},
		{"cancel odd refs", [][]byte{v, {byte(TypeCancel)}, []byte("t"), u32(1), []byte("u")}, ErrMalformed},
		{"cancel empty id", [][]byte{v, {byte(TypeCancel)}, nil, u32(1)}, ErrMalformed},
		{"cancel short attempt", [][]byte{v, {byte(TypeCancel)}, []byte("t"), {1}}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode(c.frames)
			if !errors.Is(err, c.want) {
				t.Fatalf("Decode = %#v, %v; want %v", m, err, c.want)
			}
		})
	}
}

// TestOutcomeWithoutUnits: a RESULT_READY from a worker older than cpu units (an 8-byte timing
// frame) decodes, with no units.
func TestOutcomeWithoutUnits(t *testing.T) {
	m, err := Decode([][]byte{{Version}, {byte(TypeResultReady)}, []byte("w"), []byte("t"), u32(1), nil, nil, u64(1500), []byte("42"), nil})
	if err != nil {
		t.Fatal(err)
	}
	o := m.(ResultReady).Outcomes[0]
	if o.Duration != 1500 || o.CPUUnits != 0 || string(o.Stdout) != "42" {
		t.Errorf("%+v", o)
	}
}

func TestSplitEnvelope(t *testing.T) {
	body := Encode(RequestTask{Worker: "w", Want: 1})
	cases := []struct {
		name    string
		frames  [][]byte
		envLen  int
		bodyLen int
		ok      bool
	}{
		{"req", append([][]byte{[]byte("id"), []byte("corr"), {}}, body...), 3, len(body), true},
		{"dealer", append([][]byte{[]byte("id"), {}}, body...), 2, len(body), true},
		{"no delimiter", append([][]byte{[]byte("id")}, body...), 0, 0, false},
		{"delimiter first", append([][]byte{{}}, body...), 1, len(body), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, b, ok := SplitEnvelope(c.frames)
			if ok != c.ok || (ok && (len(env) != c.envLen || len(b) != c.bodyLen)) {
				t.Fatalf("SplitEnvelope = %d, %d, %v", len(env), len(b), ok)
			}
		})
	}
}

func TestTypeString(t *testing.T) {
	if s := TypeNewTask.String(); s != "NEW_TASK" {
		t.Fatalf("String = %q", s)
	}
	if s := Type(99).String(); s != "Type(99)" {
		t.Fatalf("String = %q", s)
	}
}

func BenchmarkEncodeDecodeResult(b *testing.B) {
	m := ResultReady{Worker: "w", Outcomes: []task.Outcome{{Ref: task.Ref{ID: "0d0c6a0e-6c1f-4a43-9d6c-2a3c9d7e1f00", Attempt: 1}, Stdout: []byte("42")}}}
	var frames [][]byte
	b.ReportAllocs()
	for b.Loop() {
		frames = m.Append(frames[:0])
		if _, err := Decode(frames); err != nil {
			b.Fatal(err)
		}
	}
}

func repeatFrame(f []byte, n int) [][]byte {
	fs := make([][]byte, n)
	for i := range fs {
		fs[i] = f
	}
	return fs
}

// A heartbeat's token rides in the sender frame: a peer without tokens reads the frame as
// its sender, and a sender that merely ends in something else is not split.
func TestHeartbeatToken(t *testing.T) {
	frames := Encode(Heartbeat{Sender: "w1", Token: "0123456789abcdef"})
	if got := string(frames[2]); got != "w1 0123456789abcdef" {
		t.Fatalf("sender frame %q", got)
	}
	for _, c := range []struct{ frame, sender, token string }{
		{"w1 0123456789abcdef", "w1", "0123456789abcdef"},
		{"0123456789abcdef", "0123456789abcdef", ""},
		{"w1 0123456789ABCDEF", "w1 0123456789ABCDEF", ""},
		{"w1 0123456789abcde", "w1 0123456789abcde", ""},
	} {
		m, err := Decode([][]byte{{Version}, {byte(TypeHeartbeat)}, []byte(c.frame)})
		if err != nil {
			t.Fatal(err)
		}
		if hb := m.(Heartbeat); hb.Sender != c.sender || hb.Token != c.token {
			t.Errorf("%q decoded as %q + %q, want %q + %q", c.frame, hb.Sender, hb.Token, c.sender, c.token)
		}
	}
}
