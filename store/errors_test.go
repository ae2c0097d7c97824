package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestRedisErrClassifies(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		unavailable bool
	}{
		{"eof", io.EOF, true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"deadline", context.DeadlineExceeded, true},
		{"pool timeout", redis.ErrPoolTimeout, true},
		{"client closed", redis.ErrClosed, true},
		{"caller cancel", context.Canceled, false},
		{"nil reply", redis.Nil, false},
		{"script error", errors.New("ERR user_script:1: bad"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := redisErr("op", tc.err)
			if got := errors.Is(err, ErrUnavailable); got != tc.unavailable {
				t.Fatalf("redisErr(%v) unavailable = %v; want %v", tc.err, got, tc.unavailable)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("redisErr(%v) lost its cause: %v", tc.err, err)
			}
		})
	}
	if redisErr("op", nil) != nil {
		t.Fatal("redisErr(nil) != nil")
	}
}

// TestLoadingIsUnavailable talks to a fake server that answers every command the way a
// Redis still loading its dataset does.
func TestLoadingIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line[0] == '*' { // the start of a command
						io.WriteString(c, "-LOADING Redis is loading the dataset in memory\r\n")
					}
				}
			}()
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: l.Addr().String(), Protocol: 2, MaxRetries: -1,
		DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	s := New(c, Config{})
	err = s.Ping(context.Background())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping = %v; want ErrUnavailable", err)
	}
}
