package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/internal/testutil"
)

// Sentinel is a Redis Sentinel process owned by a test.
type Sentinel struct {
	Addr     string // 127.0.0.1:port
	password string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// sentinelCommand is how to run a Sentinel: redis-sentinel, else redis-server --sentinel
// (one binary in every Redis build). ok is false when neither is on PATH.
func sentinelCommand() (bin string, extra []string, ok bool) {
	if b, err := exec.LookPath("redis-sentinel"); err == nil {
		return b, nil, true
	}
	if b, err := exec.LookPath("redis-server"); err == nil {
		return b, []string{"--sentinel"}, true
	}
	return "", nil, false
}

// StartSentinels runs n Sentinels on free loopback ports monitoring primary under the name
// master, with a quorum of a majority and timings short enough for tests (the primary is
// down after 1 s of silence), waits until each sees the primary and stops them in
// tb.Cleanup. Without a Sentinel binary: tb.Fatal when CI=true, else tb.Skip.
func StartSentinels(tb testing.TB, master string, primary *Server, n int) []*Sentinel {
	tb.Helper()
	return StartSentinelsWith(tb, master, primary, n, "")
}

// StartSentinelsWith is StartSentinels with the Sentinels asking for password (their
// requirepass; they use it with each other too); "" asks for none.
func StartSentinelsWith(tb testing.TB, master string, primary *Server, n int, password string) []*Sentinel {
	tb.Helper()
	bin, extra, ok := sentinelCommand()
	if !ok {
		if os.Getenv("CI") == "true" {
			tb.Fatal("redistest: neither redis-sentinel nor redis-server on PATH (scripts/deps.sh --with-redis)")
		}
		tb.Skip("redistest: no redis-sentinel or redis-server on PATH")
	}
	out := make([]*Sentinel, 0, n)
	for i := range n {
		dir := tb.TempDir()
		port := testutil.FreePort(tb)
		// Sentinel rewrites its configuration file, so each gets its own, writable.
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s 127.0.0.1 %d %d\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 4000\n"+
			"sentinel parallel-syncs %s 1\n",
			port, dir, filepath.Join(dir, "sentinel.log"), master, primary.port, n/2+1, master, master, master)
		if password != "" {
			body += fmt.Sprintf("requirepass %s\nsentinel sentinel-pass %s\n", password, password)
		}
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(bin, append([]string{conf}, extra...)...)
		if err := cmd.Start(); err != nil {
			tb.Fatalf("redistest: starting sentinel %d: %v", i, err)
		}
		s := &Sentinel{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), password: password, cmd: cmd, exited: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(s.exited) }()
		tb.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-s.exited
		})
		out = append(out, s)
	}
	for _, s := range out {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, Password: password})
		testutil.WaitFor(tb, 15*time.Second, "sentinel "+s.Addr+" monitors "+master, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			addr, err := c.GetMasterAddrByName(ctx, master).Result()
			return err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(primary.port)
		})
		c.Close()
	}
	return out
}

// Master asks the Sentinel which address it knows as master now.
func (s *Sentinel) Master(ctx context.Context, master string) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, Password: s.password})
	defer c.Close()
	addr, err := c.GetMasterAddrByName(ctx, master).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(addr[0], addr[1]), nil
}
