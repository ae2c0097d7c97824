package e2e

// Test peers for the CURVE tests: a hand-written worker speaking docs/PROTOCOL.md with the
// protocol package (to play a rogue or a malicious worker), and a byte relay that records
// what crosses it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/store"
	"faas/task"
)

// testPeer is a worker written by hand: a DEALER (and a REQ in pull mode), with CURVE
// unless its key is zero.
type testPeer struct {
	tb     testing.TB
	zctx   *zmq.Context
	dealer *zmq.Socket
	req    *zmq.Socket
}

func newTestPeer(tb testing.TB, endpoint string, key zsock.KeyPair, serverKey string, pull bool) *testPeer {
	tb.Helper()
	zctx, err := zmq.NewContext()
	if err != nil {
		tb.Fatal(err)
	}
	p := &testPeer{tb: tb, zctx: zctx}
	var b [8]byte
	rand.Read(b[:])
	secret := hex.EncodeToString(b[:])
	mk := func(t zmq.Type, prefix byte) *zmq.Socket {
		s, err := zctx.NewSocket(t)
		if err != nil {
			tb.Fatal(err)
		}
		s.SetLinger(0)
		s.SetIdentity(string(prefix) + secret)
		if !key.IsZero() {
			if err := zsock.CurveClient(s, key, serverKey); err != nil {
				tb.Fatal(err)
			}
		}
		if err := s.Connect(endpoint); err != nil {
			tb.Fatal(err)
		}
		return s
	}
	p.dealer = mk(zmq.DEALER, protocol.RouteControl)
	if pull {
		p.req = mk(zmq.REQ, protocol.RouteRequest)
		p.req.SetReqRelaxed(1)
		p.req.SetReqCorrelate(1)
	}
	tb.Cleanup(p.close)
	return p
}

func (p *testPeer) close() {
	p.dealer.Close()
	if p.req != nil {
		p.req.Close()
	}
	zsock.Terminate(p.zctx, time.Second)
}

func (p *testPeer) send(m protocol.Message) {
	p.tb.Helper()
	if err := zsock.Send(p.dealer, 0, protocol.Delimiter, m.Append(nil)); err != nil {
		p.tb.Fatalf("peer send %v: %v", m.Type(), err)
	}
}

// recv returns the next message on the DEALER within d (nil if none).
func (p *testPeer) recv(d time.Duration) protocol.Message {
	p.tb.Helper()
	return recvOn(p.tb, p.dealer, d, true)
}

func recvOn(tb testing.TB, s *zmq.Socket, d time.Duration, delim bool) protocol.Message {
	tb.Helper()
	s.SetRcvtimeo(d)
	frames, err := s.RecvMessageBytes(0)
	if err != nil {
		return nil
	}
	if delim {
		frames = frames[1:]
	}
	m, err := protocol.Decode(frames)
	if err != nil {
		tb.Fatalf("peer: undecodable message: %v", err)
	}
	return m
}

// recvType waits up to d for a message of type t on the DEALER, skipping others.
func (p *testPeer) recvType(t protocol.Type, d time.Duration) protocol.Message {
	p.tb.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if m := p.recv(time.Until(end)); m != nil && m.Type() == t {
			return m
		}
	}
	return nil
}

// register sends REGISTRATION until an ACK comes (within d); it reports whether one did.
func (p *testPeer) register(name string, mode protocol.Mode, capacity int, d time.Duration) bool {
	p.tb.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		p.send(protocol.Registration{Worker: name, Mode: mode, Capacity: capacity})
		if p.recvType(protocol.TypeAck, 300*time.Millisecond) != nil {
			return true
		}
	}
	return false
}

// tasks collects up to n tasks sent to the peer within d: push mode reads NEW_TASK on the
// DEALER; pull mode asks on the REQ.
func (p *testPeer) tasks(n int, d time.Duration) []task.Task {
	p.tb.Helper()
	var got []task.Task
	end := time.Now().Add(d)
	for len(got) < n && time.Now().Before(end) {
		var m protocol.Message
		if p.req != nil {
			zsock.Send(p.req, 0, nil, protocol.RequestTask{Worker: "x", Want: n - len(got)}.Append(nil))
			m = recvOn(p.tb, p.req, time.Until(end), false)
		} else {
			m = p.recvType(protocol.TypeNewTask, time.Until(end))
		}
		if nt, ok := m.(protocol.NewTask); ok {
			got = append(got, nt.Tasks...)
		}
	}
	return got
}

// relay is a TCP proxy that keeps every byte it forwards.
type relay struct {
	ln  net.Listener
	mu  sync.Mutex
	buf []byte
}

func startRelay(tb testing.TB, target string) (*relay, string) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &relay{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.pipe(c, target)
		}
	}()
	tb.Cleanup(func() { ln.Close() })
	return r, "tcp://" + ln.Addr().String()
}

func (r *relay) pipe(c net.Conn, target string) {
	defer c.Close()
	u, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer u.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		b := make([]byte, 64<<10)
		for {
			n, err := src.Read(b)
			if n > 0 {
				r.mu.Lock()
				r.buf = append(r.buf, b[:n]...)
				r.mu.Unlock()
				if _, werr := dst.Write(b[:n]); werr != nil {
					err = werr
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					dst.Close()
				}
				src.Close()
				return
			}
		}
	}
	go cp(u, c)
	go cp(c, u)
	wg.Wait()
}

func (r *relay) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.buf...)
}

// addFunction stores a module and a function of it, with limits.
func (p *platform) addFunction(name string, wasm []byte, lim task.Limits) store.Function {
	p.tb.Helper()
	ctx := context.Background()
	fn := store.Function{ID: fmt.Sprintf("%s-%d", name, time.Now().UnixNano()), Name: name, ModuleHash: hashOf(wasm),
		ModuleSize: int64(len(wasm)), Limits: lim}
	if err := p.st.PutModule(ctx, fn.ModuleHash, wasm); err != nil {
		p.tb.Fatal(err)
	}
	if err := p.st.CreateFunction(ctx, fn); err != nil {
		p.tb.Fatal(err)
	}
	return fn
}
