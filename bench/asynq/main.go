// Command asynq is the peer baseline of docs/BENCHMARKS.md: how fast a native, unsandboxed
// task queue on Redis drains tasks on this machine. It enqueues -n tasks with a no-op
// handler's type while no server runs (untimed), then starts an asynq server with -c workers
// and times the drain, from the server's start until no task is pending or active. faas is
// measured the same way by `go run ./bench -mode local` (submit first, then time the drain).
//
// It lives in a module of its own so that asynq never becomes a dependency of faas.
//
// Output: "TASKS_PER_SEC SECONDS" on stdout, details on stderr. Use an empty Redis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address, host:port (flush it first)")
	n := flag.Int("n", 20000, "how many tasks")
	workers := flag.Int("c", 10, "asynq server concurrency")
	limit := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	rate, took, err := measure(*addr, *n, *workers, *limit)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/asynq:", err)
		os.Exit(1)
	}
	fmt.Printf("%.0f %.3f\n", rate, took.Seconds())
}

const taskType = "noop"

// measure enqueues n tasks, then drains them and returns tasks per second of the drain.
func measure(addr string, n, workers int, limit time.Duration) (float64, time.Duration, error) {
	if n <= 0 || workers <= 0 {
		return 0, 0, errors.New("-n and -c must be positive")
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	opt := asynq.RedisClientOpt{Addr: addr}
	if err := enqueue(ctx, opt, n); err != nil {
		return 0, 0, err
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()

	srv := asynq.NewServer(opt, asynq.Config{Concurrency: workers, LogLevel: asynq.WarnLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc(taskType, func(context.Context, *asynq.Task) error { return nil })
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, 0, fmt.Errorf("start server: %w", err)
	}
	defer srv.Shutdown()
	for {
		q, err := insp.GetQueueInfo("default")
		if err != nil {
			return 0, 0, fmt.Errorf("queue info: %w", err)
		}
		if q.Pending == 0 && q.Active == 0 {
			took := time.Since(start)
			fmt.Fprintf(os.Stderr, "drained %d tasks (%d processed, %d failed) in %v with %d workers\n",
				n, q.Processed, q.Failed, took, workers)
			return float64(n) / took.Seconds(), took, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("drain: %w (%d pending, %d active)", ctx.Err(), q.Pending, q.Active)
		case <-time.After(time.Millisecond):
		}
	}
}

// enqueue submits n tasks from 32 goroutines, as faas's bench submits with concurrent batches.
func enqueue(ctx context.Context, opt asynq.RedisClientOpt, n int) error {
	c := asynq.NewClient(opt)
	defer c.Close()
	const senders = 32
	start := time.Now()
	g, ctx := errgroup.WithContext(ctx)
	for s := range senders {
		g.Go(func() error {
			for i := s; i < n; i += senders {
				if _, err := c.EnqueueContext(ctx, asynq.NewTask(taskType, nil)); err != nil {
					return fmt.Errorf("enqueue: %w", err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "enqueued %d tasks in %v\n", n, time.Since(start))
	return nil
}
