package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Announcements counts how many times each word (a task id, say) was published on one
// channel: a test that subscribes before anything runs can then check that every task was
// announced terminal exactly once.
type Announcements struct {
	mu     sync.Mutex
	counts map[string]int
}

// Count subscribes to channel and counts every word of every message published on it
// until the test ends. Subscribe before whatever publishes starts, so that nothing is
// missed; the counting ends if the server is stopped or killed.
//
// It speaks RESP on a plain connection rather than through go-redis: go-redis's PubSub
// pings its connection and re-subscribes when a ping is late (under load, in a raced test
// binary), and what is published meanwhile is lost; this reader only reads.
func (s *Server) Count(tb testing.TB, channel string) *Announcements {
	tb.Helper()
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	fmt.Fprintf(conn, "*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n", len(channel), channel)
	rd := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if m, err := readRESP(rd); err != nil || len(m) != 3 || m[0] != "subscribe" {
		tb.Fatalf("redistest: subscribing to %s: %q, %v", channel, m, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	a := &Announcements{counts: make(map[string]int)}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			m, err := readRESP(rd)
			if err != nil {
				return
			}
			if len(m) != 3 || m[0] != "message" {
				continue
			}
			a.mu.Lock()
			for _, w := range strings.Fields(m[2]) {
				a.counts[w]++
			}
			a.mu.Unlock()
		}
	}()
	tb.Cleanup(func() { _ = conn.Close(); <-stopped })
	return a
}

// Once waits up to within for every one of words to be announced (an announcement may
// still be on its way when the state it announces can be read), then returns the words
// never announced, those announced more than once (as "word×n") and the words announced
// that are not among words, sorted.
func (a *Announcements) Once(words []string, within time.Duration) (missing, twice, unknown []string) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && !a.all(words) {
		time.Sleep(20 * time.Millisecond)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	want := make(map[string]bool, len(words))
	for _, w := range words {
		want[w] = true
		switch n := a.counts[w]; {
		case n == 0:
			missing = append(missing, w)
		case n > 1:
			twice = append(twice, fmt.Sprintf("%s×%d", w, n))
		}
	}
	for w := range a.counts {
		if !want[w] {
			unknown = append(unknown, w)
		}
	}
	sort.Strings(unknown)
	return missing, twice, unknown
}

func (a *Announcements) all(words []string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, w := range words {
		if a.counts[w] == 0 {
			return false
		}
	}
	return true
}

// readRESP reads one RESP array of bulk strings or integers (all a subscriber receives).
func readRESP(rd *bufio.Reader) ([]string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[0] != '*' {
		return nil, fmt.Errorf("RESP: want an array, got %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return nil, fmt.Errorf("RESP: %q: %w", line, err)
	}
	out := make([]string, 0, n)
	for range n {
		line, err := rd.ReadString('\n')
		if err != nil {
			return nil, err
		}
		switch {
		case len(line) > 2 && line[0] == '$':
			size, err := strconv.Atoi(strings.TrimSpace(line[1:]))
			if err != nil {
				return nil, fmt.Errorf("RESP: %q: %w", line, err)
			}
			buf := make([]byte, size+2)
			if _, err := io.ReadFull(rd, buf); err != nil {
				return nil, err
			}
			out = append(out, string(buf[:size]))
		case len(line) > 2 && line[0] == ':':
			out = append(out, strings.TrimSpace(line[1:]))
		default:
			return nil, fmt.Errorf("RESP: unexpected %q", line)
		}
	}
	return out, nil
}
