// Package testutil is the one set of test helpers every package's tests share: polling
// instead of sleeping, free loopback ports, and a buffer safe to read while a component
// writes to it. It is imported only by tests, test harnesses and the bench program.
package testutil

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// pollEvery is how often WaitFor asks again: short enough not to slow a test down, long
// enough not to take a core from what it waits for.
const pollEvery = 5 * time.Millisecond

// WaitFor polls cond until it holds; after within passes the test fails, naming what it
// waited for.
func WaitFor(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	WaitForProgress(tb, within, what, func() (bool, string) { return cond(), "" })
}

// WaitForProgress is WaitFor for a condition that reports its progress: on failure the test
// also shows the last progress cond gave.
func WaitForProgress(tb testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, progress := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if progress != "" {
				tb.Fatalf("timed out after %v waiting for %s; last: %s", within, what, progress)
			}
			tb.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(pollEvery)
	}
}

// Port returns a loopback TCP port nobody listens on (for a moment: callers that bind it
// later retry when another process took it first).
func Port() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePort is Port for a test: it fails the test when no port can be had.
func FreePort(tb testing.TB) int {
	tb.Helper()
	p, err := Port()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// SyncBuffer is a bytes.Buffer safe to read while another goroutine writes to it (a
// command's output, a child process's logs).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
