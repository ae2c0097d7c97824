package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/internal/testutil"
)

// This file is the harness's Redis: a private redis-server for a run, and the counters of
// round trips per task.

// trips counts the round trips the dispatcher's Redis client makes (a pipeline is one);
// pub/sub connections are not counted: they carry no requests while listening.
var trips roundTripCounter

type roundTripCounter struct{ n atomic.Int64 }

func (c *roundTripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *roundTripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *roundTripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

func commandsProcessed(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	info, err := rdb.Info(ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO stats has no total_commands_processed")
}

type redisProc struct {
	cmd *exec.Cmd
	dir string
	url string
}

func startRedis(ctx context.Context) (*redisProc, error) {
	port, err := testutil.Port()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "faas-bench-redis")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server (install it with `make deps`): %w", err)
	}
	p := &redisProc{cmd: cmd, dir: dir, url: fmt.Sprintf("redis://127.0.0.1:%d/0", port)}
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer rdb.Close()
	for i := 0; ; i++ {
		if rdb.Ping(ctx).Err() == nil {
			return p, nil
		}
		if i == 100 {
			p.stop()
			return nil, errors.New("redis-server did not answer PING within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *redisProc) stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	_ = os.RemoveAll(filepath.Clean(p.dir))
}
