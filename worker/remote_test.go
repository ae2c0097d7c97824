package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/sandbox"
	"faas/task"
)

func TestRunRefusesBadConfig(t *testing.T) {
	sb, err := sandbox.New(context.Background(), sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(context.Background())
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no mode", Config{Endpoint: "tcp://127.0.0.1:1"}},
		{"bad mode", Config{Mode: "poll", Endpoint: "tcp://127.0.0.1:1"}},
		{"no endpoint", Config{Mode: "pull"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Run(context.Background(), sb, c.cfg, nil); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Run = %v, want ErrBadConfig", err)
			}
		})
	}
}

// fakeDispatcher is a bare ROUTER the test drives by hand.
type fakeDispatcher struct {
	t      *testing.T
	router *zmq.Socket
}

func newFakeDispatcher(t *testing.T) (*fakeDispatcher, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r, err := zmq.NewSocket(zmq.ROUTER)
	if err != nil {
		t.Fatal(err)
	}
	r.SetLinger(0)
	endpoint := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	if err := r.Bind(endpoint); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &fakeDispatcher{t: t, router: r}, endpoint
}

// recv returns the next message's envelope and decoded body, failing after 5s.
func (d *fakeDispatcher) recv() ([][]byte, protocol.Message) {
	d.t.Helper()
	p := zmq.NewPoller()
	p.Add(d.router, zmq.POLLIN)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		polled, err := p.Poll(100 * time.Millisecond)
		if err != nil || len(polled) == 0 {
			continue
		}
		frames, err := d.router.RecvMessageBytes(0)
		if err != nil {
			d.t.Fatal(err)
		}
		env, body, ok := protocol.SplitEnvelope(frames)
		if !ok {
			d.t.Fatalf("message without envelope: %q", frames)
		}
		m, err := protocol.Decode(body)
		if err != nil {
			d.t.Fatalf("worker sent a bad message: %v", err)
		}
		return env, m
	}
	d.t.Fatal("no message from the worker within 5s")
	return nil, nil
}

// expect skips messages until one of type typ arrives.
func (d *fakeDispatcher) expect(typ protocol.Type) ([][]byte, protocol.Message) {
	d.t.Helper()
	for {
		env, m := d.recv()
		if m.Type() == typ {
			return env, m
		}
	}
}

func (d *fakeDispatcher) sendRaw(env [][]byte, body [][]byte) {
	d.t.Helper()
	if err := zsock.Send(d.router, 0, env, body); err != nil {
		d.t.Fatal(err)
	}
}

// TestWorkerSurvivesGarbage: malformed and wrong-version messages from the dispatcher are
// dropped; the worker then registers and asks for work as usual.
func TestWorkerSurvivesGarbage(t *testing.T) {
	d, endpoint := newFakeDispatcher(t)
	sb, err := sandbox.New(context.Background(), sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, sb, Config{Mode: "pull", Slots: 3, Endpoint: endpoint, ID: "w",
			HeartbeatInterval: 50 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()

	env, m := d.expect(protocol.TypeRegistration)
	if r := m.(protocol.Registration); r.Worker != "w" || r.Capacity != 3 || r.Mode != "pull" {
		t.Fatalf("registration = %+v", r)
	}
	for _, body := range [][][]byte{
		{},
		{{1}},
		{{protocol.Version + 1}, {byte(protocol.TypeAck)}, []byte("s"), {0, 0, 0, 1}, {0, 0, 0, 1}},
		{{protocol.Version}, {200}},
		{{protocol.Version}, {byte(protocol.TypeNewTask)}, []byte("only an id")},
		{{protocol.Version}, {byte(protocol.TypeModule)}, []byte("hash")},
	} {
		d.sendRaw(env, body)
	}
	d.sendRaw(env, protocol.Encode(protocol.Ack{Session: "s1", HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: time.Second}))
	_, m = d.expect(protocol.TypeRequestTask)
	if r := m.(protocol.RequestTask); r.Want != 3 || r.Worker != "w" {
		t.Fatalf("request = %+v, want 3 tasks for w", r)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop")
	}
}

// TestPushWorkerKeepsCapacity: a push worker sent more tasks than its slots runs what fits
// and hands the rest back with RELEASE; it asks for an unknown module once and reports a
// module the dispatcher cannot provide as an internal failure.
func TestPushWorkerKeepsCapacity(t *testing.T) {
	d, endpoint := newFakeDispatcher(t)
	sb, err := sandbox.New(context.Background(), sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, sb, Config{Mode: "push", Slots: 1, Endpoint: endpoint, ID: "w",
			HeartbeatInterval: 50 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() {
		cancel()
		<-done
	}()

	env, _ := d.expect(protocol.TypeRegistration)
	d.sendRaw(env, protocol.Encode(protocol.Ack{Session: "s", HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: time.Second}))
	lim := task.DefaultLimits()
	d.sendRaw(env, protocol.Encode(protocol.NewTask{Tasks: []task.Task{
		{ID: "t1", Attempt: 1, Name: "f", ModuleHash: "h", Limits: lim},
		{ID: "t2", Attempt: 1, Name: "f", ModuleHash: "h", Limits: lim},
	}}))
	var released, asked bool
	for !(released && asked) {
		env, m := d.recv()
		switch m := m.(type) {
		case protocol.Release:
			if len(m.Refs) != 1 || m.Refs[0].ID != "t2" {
				t.Fatalf("released %+v, want t2", m.Refs)
			}
			released = true
		case protocol.ModuleRequest:
			if asked {
				t.Fatal("module asked twice")
			}
			asked = true
			d.sendRaw(env, protocol.Encode(protocol.Module{Hash: "h", Err: "not found"}))
		case protocol.ResultReady:
			t.Fatalf("result before the module answer: %+v", m)
		}
	}
	_, m := d.expect(protocol.TypeResultReady)
	outs := m.(protocol.ResultReady).Outcomes
	if len(outs) != 1 || outs[0].ID != "t1" || outs[0].Failure == nil || outs[0].Failure.Kind != task.KindInternal {
		t.Fatalf("outcomes %+v, want t1 failed internal", outs)
	}
}
