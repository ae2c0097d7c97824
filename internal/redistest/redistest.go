// Package redistest runs a real redis-server for tests: on a free loopback port, in a
// temporary directory, stopped when the test ends. Outages are injected by stopping,
// killing, restarting (same port, same directory: appendonly files survive) or pausing
// (SIGSTOP) the server.
package redistest

import (
	"context"
	"errors"
	"faas/internal/testutil"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process owned by a test.
type Server struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://Addr/0
	Dir  string // working directory (dump and appendonly files)

	port int
	args []string
	bin  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

// Start runs a real redis-server on a free loopback port (args like "--appendonly", "yes"
// are added to its command line) in tb.TempDir(), waits until it answers PING, and stops it
// in tb.Cleanup. If redis-server is not on PATH: tb.Fatal when CI=true, else tb.Skip.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redistest: redis-server not on PATH (install redis-server): %v", err)
		}
		tb.Skipf("redistest: redis-server not on PATH: %v", err)
	}
	s := &Server{bin: bin, args: args, Dir: tb.TempDir()}
	tb.Cleanup(s.Stop)
	var lastErr error
	for try := 0; try < 5; try++ { // the free port may be taken between probe and bind
		port, err := testutil.Port()
		if err != nil {
			tb.Fatalf("redistest: free port: %v", err)
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "redis://" + s.Addr + "/0"
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	tb.Fatalf("redistest: %v", lastErr)
	return nil
}

func (s *Server) start() error {
	argv := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--logfile", filepath.Join(s.Dir, "redis.log"),
	}
	argv = append(argv, s.args...) // later options win
	cmd := exec.Command(s.bin, argv...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited, s.paused = cmd, exited, false
	s.mu.Unlock()

	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			return fmt.Errorf("redis-server on %s exited at start: %s", s.Addr, lastLines(log, 5))
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server on %s did not answer PING: %v", s.Addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lastLines(b []byte, n int) string {
	end := len(b)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' && i != len(b)-1 {
			n--
			if n == 0 {
				return string(b[i+1 : end])
			}
		}
	}
	return string(b)
}

// Client returns a client of the server, closed at cleanup. It honours context deadlines
// (ContextTimeoutEnabled), so a test can bound a call to a paused server.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, ContextTimeoutEnabled: true})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop shuts the server down (SIGTERM: an appendonly server writes its file) and waits for
// it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() { s.signalAndWait(syscall.SIGTERM) }

// Kill ends the server with SIGKILL (a crash: no final write).
func (s *Server) Kill() { s.signalAndWait(syscall.SIGKILL) }

func (s *Server) signalAndWait(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited, paused := s.cmd, s.exited, s.paused
	s.cmd, s.paused = nil, false
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the server if it runs and starts it again on the same port and directory.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	var err error
	for try := 0; try < 50; try++ { // the port can take a moment to be free again
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("redistest: restart: %v", err)
}

// Pause freezes the server (SIGSTOP): connections stay open but nothing answers.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP, true) }

// Resume undoes Pause (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	s.paused = paused
}

// Running reports whether the server process is running (it may be paused).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Flush empties every database (between subtests sharing a server).
func (s *Server) Flush(tb testing.TB) {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil && !errors.Is(err, redis.Nil) {
		tb.Fatalf("redistest: flushall: %v", err)
	}
}
