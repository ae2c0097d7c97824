package worker

// This file: a fake dispatcher the tests drive by hand.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/sandbox"
)

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

// startWorker runs a worker of mode with slots against endpoint, heart-beating every 50 ms.
// stop cancels it; wait (after stop) fails the test unless Run returns nil within the given
// time. The test's cleanup stops and waits (10 s) for a worker the test left running.
func startWorker(t *testing.T, mode protocol.Mode, slots int, endpoint string) (stop context.CancelFunc, wait func(within time.Duration)) {
	t.Helper()
	return startWorkerWith(t, Config{Mode: mode, Slots: slots, Endpoint: endpoint})
}

// startWorkerWith is startWorker with more of the configuration (ID and heartbeat are set
// here).
func startWorkerWith(t *testing.T, cfg Config) (stop context.CancelFunc, wait func(within time.Duration)) {
	t.Helper()
	cfg.ID, cfg.HeartbeatInterval = "w", 50*time.Millisecond
	sb, err := sandbox.New(context.Background(), sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, sb, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	var once sync.Once
	wait = func(within time.Duration) {
		t.Helper()
		once.Do(func() {
			select {
			case err := <-done:
				if err != nil {
					t.Error(err)
				}
			case <-time.After(within):
				t.Errorf("worker did not stop within %v", within)
			}
		})
	}
	t.Cleanup(func() { cancel(); wait(10 * time.Second) })
	return cancel, wait
}
