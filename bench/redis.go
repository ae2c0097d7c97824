package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	n, err := infoSum(ctx, rdb, "stats", "total_commands_processed")
	return int64(n), err
}

// redisCPU is the CPU time (s, user + system) Redis has used: of every master on a cluster.
func redisCPU(ctx context.Context, rdb redis.UniversalClient) (float64, error) {
	return infoSum(ctx, rdb, "cpu", "used_cpu_user", "used_cpu_sys")
}

// infoSum adds the INFO section's fields, over every master of a cluster.
func infoSum(ctx context.Context, rdb redis.UniversalClient, section string, fields ...string) (float64, error) {
	one := func(ctx context.Context, c *redis.Client) (float64, error) {
		info, err := c.Info(ctx, section).Result()
		if err != nil {
			return 0, err
		}
		var sum float64
		found := 0
		for _, line := range strings.Split(info, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && slices.Contains(fields, k) {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return 0, fmt.Errorf("INFO %s: %s: %w", section, k, err)
				}
				sum += f
				found++
			}
		}
		if found != len(fields) {
			return 0, fmt.Errorf("INFO %s lacks some of %v", section, fields)
		}
		return sum, nil
	}
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return one(ctx, rdb.(*redis.Client))
	}
	var mu sync.Mutex
	var total float64
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		v, err := one(ctx, c)
		mu.Lock()
		total += v
		mu.Unlock()
		return err
	})
	return total, err
}

// flushAll empties the database, of every master on a cluster.
func flushAll(ctx context.Context, rdb redis.UniversalClient) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushDB(ctx).Err() })
	}
	return rdb.FlushDB(ctx).Err()
}

type redisProc struct {
	cmd *exec.Cmd
	dir string
	url string
}

func startRedis(ctx context.Context, args ...string) (*redisProc, error) {
	port, err := testutil.Port()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "faas-bench-redis")
	if err != nil {
		return nil, err
	}
	argv := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir}, args...)
	cmd := exec.Command("redis-server", argv...)
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

// startCluster runs n redis-server masters in cluster mode, splits the slots between them in
// even runs (as redis-cli --cluster create does) and waits for cluster_state:ok.
func startCluster(ctx context.Context, n int) (procs []*redisProc, url string, err error) {
	defer func() {
		if err != nil {
			for _, p := range procs {
				p.stop()
			}
		}
	}()
	addrs := make([]string, n)
	for i := range n {
		p, err := startRedis(ctx, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
		if err != nil {
			return procs, "", err
		}
		procs = append(procs, p)
		addrs[i] = strings.TrimSuffix(strings.TrimPrefix(p.url, "redis://"), "/0")
	}
	for i, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", i*16384/n, (i+1)*16384/n-1).Err()
		if err == nil && i > 0 {
			host, port, _ := strings.Cut(addrs[0], ":")
			err = c.ClusterMeet(ctx, host, port).Err()
		}
		c.Close()
		if err != nil {
			return procs, "", fmt.Errorf("forming the cluster: %w", err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, _ := c.ClusterInfo(ctx).Result()
			nodes, _ := c.ClusterNodes(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") && strings.Count(nodes, "master") >= n {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				return procs, "", errors.New("the cluster did not form within 20s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	return procs, "redis+cluster://" + strings.Join(addrs, ","), nil
}
