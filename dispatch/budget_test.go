package dispatch

import (
	"bytes"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/samples"
)

// A connection is sent each module once per window, twice after registering again on it,
// and at most moduleByteBudget bytes of modules it has not acknowledged.
func TestModuleAllowance(t *testing.T) {
	now := time.Now()
	w := &remoteWorker{capacity: 4}
	if why := w.moduleRefusal("a", now); why != "" {
		t.Fatalf("first answer refused: %s", why)
	}
	w.moduleSent("a", 10, now)
	if w.moduleRefusal("a", now.Add(time.Second)) == "" {
		t.Fatal("a second answer within the window was allowed")
	}
	if why := w.moduleRefusal("b", now); why != "" {
		t.Fatalf("another module refused: %s", why)
	}
	if why := w.moduleRefusal("a", now.Add(protocol.ModuleWindow)); why != "" {
		t.Fatalf("refused after the window: %s", why)
	}

	// Registered again: one retry per module within the window, not more.
	w.retryUntil = now.Add(protocol.ModuleWindow)
	if why := w.moduleRefusal("a", now.Add(time.Second)); why != "" {
		t.Fatalf("the retry after a registration was refused: %s", why)
	}
	w.moduleSent("a", 10, now.Add(time.Second))
	if w.moduleRefusal("a", now.Add(2*time.Second)) == "" {
		t.Fatal("a third answer within the window was allowed")
	}

	// Bytes: at most the budget not acknowledged, whatever the window.
	v := &remoteWorker{capacity: 4}
	v.moduleSent("x", moduleByteBudget-100, now)
	if v.bytesRefusal(100) != "" {
		t.Fatal("a module that fits the budget was refused")
	}
	if v.bytesRefusal(101) == "" {
		t.Fatal("a module over the budget was allowed")
	}
	// A token sent before the module proves nothing; one sent after it does, once echoed.
	v.echoed("stale")
	v.tokenSent("t1")
	v.echoed("forged")
	if v.bytesRefusal(101) == "" {
		t.Fatal("an unknown token acknowledged the module")
	}
	v.echoed("t1")
	if why := v.bytesRefusal(moduleByteBudget); why != "" {
		t.Fatalf("refused after the acknowledgement: %s", why)
	}

	// A task sent on the control connection after the module acknowledges it when read; one
	// sent before (or on the REQ socket) does not.
	u := &remoteWorker{capacity: 4}
	u.taskSeq = 1
	before := flight{seq: 1}
	u.moduleSent("x", moduleByteBudget, now)
	u.readTask(before)
	u.readTask(flight{seq: 0})
	if u.bytesRefusal(1) == "" {
		t.Fatal("a task sent before the module acknowledged it")
	}
	u.taskSeq++
	u.readTask(flight{seq: u.taskSeq})
	if why := u.bytesRefusal(moduleByteBudget); why != "" {
		t.Fatalf("refused after a later task was read: %s", why)
	}
}

// rawPeer is a DEALER speaking the protocol by hand, as a worker that reads.
type rawPeer struct {
	t *testing.T
	s *zmq.Socket
}

func newRawPeer(t *testing.T, endpoint string) *rawPeer {
	s, err := zmq.NewSocket(zmq.DEALER)
	if err != nil {
		t.Fatal(err)
	}
	s.SetLinger(0)
	t.Cleanup(func() { s.Close() })
	if err := s.Connect(endpoint); err != nil {
		t.Fatal(err)
	}
	s.SetRcvtimeo(5 * time.Second)
	return &rawPeer{t: t, s: s}
}

func (p *rawPeer) send(m protocol.Message) {
	p.t.Helper()
	if err := zsock.Send(p.s, 0, protocol.Delimiter, protocol.Encode(m)); err != nil {
		p.t.Fatal(err)
	}
}

// expect reads messages until one of type typ (heartbeats and others are skipped).
func (p *rawPeer) expect(typ protocol.Type) protocol.Message {
	p.t.Helper()
	for {
		frames, err := p.s.RecvMessageBytes(0)
		if err != nil {
			p.t.Fatalf("waiting for %s: %v", typ, err)
		}
		m, err := protocol.Decode(frames[1:])
		if err != nil {
			p.t.Fatal(err)
		}
		if m.Type() == typ {
			return m
		}
	}
}

// TestModuleOncePerWindow: over real ZeroMQ, a connection is sent a module once; asked again
// within the window it gets a small "retry later"; registered again on the same connection
// it may have it once more.
func TestModuleOncePerWindow(t *testing.T) {
	f := newFixture(t, protocol.ModePush)
	fn := f.register(t, "double", samples.DoubleWAT)
	f.startDispatcher(t)
	p := newRawPeer(t, f.endpoint)
	p.send(protocol.Registration{Worker: "raw", Mode: protocol.ModePush, Capacity: 1})
	p.expect(protocol.TypeAck)
	f.submit(t, fn, [][]byte{[]byte("21")})
	p.expect(protocol.TypeNewTask)

	ask := func() protocol.Module {
		p.send(protocol.ModuleRequest{Worker: "raw", Hash: fn.ModuleHash})
		return p.expect(protocol.TypeModule).(protocol.Module)
	}
	if m := ask(); m.Err != "" || !bytes.Equal(m.Wasm, samples.DoubleWAT) {
		t.Fatalf("first answer: err %q, %d bytes; want the module", m.Err, len(m.Wasm))
	}
	if m := ask(); !strings.HasPrefix(m.Err, protocol.ModuleRetryLater) || len(m.Wasm) != 0 {
		t.Fatalf("second answer within the window: err %q, %d bytes; want a retry-later refusal", m.Err, len(m.Wasm))
	}
	p.send(protocol.Registration{Worker: "raw", Mode: protocol.ModePush, Capacity: 1, Running: 1})
	p.expect(protocol.TypeAck)
	if m := ask(); m.Err != "" || len(m.Wasm) == 0 {
		t.Fatalf("answer after registering again: err %q, %d bytes; want the module", m.Err, len(m.Wasm))
	}
	if m := ask(); !strings.HasPrefix(m.Err, protocol.ModuleRetryLater) {
		t.Fatalf("third answer within the window: err %q; want a retry-later refusal", m.Err)
	}
}
