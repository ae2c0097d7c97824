package zsock

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// BenchmarkUnfinishedMultipart measures what libzmq holds for a multipart message that never
// ends: a raw ZMTP 3.0 client sends 2,000,000 frames with the MORE flag to a ROUTER and
// stops; the ROUTER delivers nothing (libzmq makes a message visible only when complete) and
// keeps every frame. Reported: the receiving process's RSS growth per frame, and the wire
// bytes per frame. docs/RATIONALE.md ("The worker port: ...") cites it. Run:
//
//	go test -run XXX -bench UnfinishedMultipart -benchtime 1x ./internal/zsock
func BenchmarkUnfinishedMultipart(b *testing.B) {
	for _, size := range []int{0, 4, 36} {
		b.Run(fmt.Sprintf("frame=%dB", size), func(b *testing.B) {
			for b.Loop() {
				grown := unfinishedMultipart(b, size, 2_000_000)
				b.ReportMetric(float64(grown)/2e6, "rss-bytes/frame")
				b.ReportMetric(float64(size+2), "wire-bytes/frame")
			}
		})
	}
}

func unfinishedMultipart(b *testing.B, size, frames int) int64 {
	zctx, err := zmq.NewContext()
	if err != nil {
		b.Fatal(err)
	}
	defer zctx.Term()
	r, err := zctx.NewSocket(zmq.ROUTER)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	r.SetLinger(0)
	r.SetMaxmsgsize(65 << 20) // per frame: no bound on the message
	if err := r.Bind("tcp://127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	ep, _ := r.GetLastEndpoint()
	c, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// ZMTP 3.0: greeting (signature, version 3.0, mechanism NULL), then READY as a DEALER.
	g := make([]byte, 64)
	g[0], g[9], g[10] = 0xff, 0x7f, 3
	copy(g[12:], "NULL")
	ready := append([]byte{5}, "READY"...)
	ready = append(ready, 11)
	ready = append(ready, "Socket-Type"...)
	ready = append(ready, 0, 0, 0, 6)
	ready = append(ready, "DEALER"...)
	c.Write(g)
	c.Write(append([]byte{0x04, byte(len(ready))}, ready...))
	if _, err := c.Read(make([]byte, 64)); err != nil {
		b.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	before := vmRSS()
	w := bufio.NewWriterSize(c, 1<<20)
	frame := append([]byte{0x01, byte(size)}, make([]byte, size)...) // MORE, short size
	for range frames {
		w.Write(frame)
	}
	w.Flush()
	time.Sleep(3 * time.Second) // libzmq's I/O thread reads it all
	grown := vmRSS() - before
	r.SetRcvtimeo(100 * time.Millisecond)
	if _, err := r.RecvBytes(0); err == nil {
		b.Fatal("an unfinished message was delivered")
	}
	return grown
}

func vmRSS() int64 {
	s, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(v), &kb)
			return kb << 10
		}
	}
	return 0
}
