package store_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/internal/redistest"
	"faas/store"
	"faas/task"
)

// redisCPU is the CPU time (user+system, seconds) the redis-server process has used
// (INFO cpu): the server's cost of the store, including its network work, and, unlike wall
// time, hardly affected by other load on the machine.
func redisCPU(tb testing.TB, c redis.UniversalClient) float64 {
	tb.Helper()
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	total := 0.0
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
}

// startTimer notes Redis's CPU time and resets the benchmark timer.
func startTimer(b *testing.B, s *store.Store) {
	b.Helper()
	cpuAtStart = redisCPU(b, store.ClientOf(s))
	b.ReportAllocs()
	b.ResetTimer()
}

var cpuAtStart float64

// report adds tasks/s and the Redis CPU time per task.
func report(b *testing.B, s *store.Store) {
	b.Helper()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
	b.ReportMetric((redisCPU(b, store.ClientOf(s))-cpuAtStart)*1e6/float64(b.N), "redis-cpu-µs/task")
}

// Benchmarks run against a real redis-server (skipped without one). Each reports tasks/s;
// ns/op is per task.
//
//	go test -run '^$' -bench . -benchtime 20000x ./store/

func BenchmarkSubmit(b *testing.B) {
	for _, batch := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, _ := startStore(b, store.Config{})
			f := mkFunction(b, s, "bench")
			ctx := context.Background()
			inputs := make([][]byte, batch)
			for i := range inputs {
				inputs[i] = []byte("input")
			}
			startTimer(b, s)
			for done := 0; done < b.N; done += batch {
				if _, err := s.Submit(ctx, f, inputs[:min(batch, b.N-done)]); err != nil {
					b.Fatal(err)
				}
			}
			report(b, s)
		})
	}
}

// BenchmarkClaimComplete measures the dispatcher's Redis cost per task: tasks are queued
// first (untimed), then claimed and completed in batches, as a local-mode drain does.
func BenchmarkClaimComplete(b *testing.B) {
	for _, batch := range []int{1, 8, 32, 128} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, _ := startStore(b, store.Config{})
			f := mkFunction(b, s, "bench")
			ctx := context.Background()
			inputs := make([][]byte, 1000)
			for i := range inputs {
				inputs[i] = []byte("input")
			}
			for done := 0; done < b.N; done += len(inputs) {
				if _, err := s.Submit(ctx, f, inputs[:min(len(inputs), b.N-done)]); err != nil {
					b.Fatal(err)
				}
			}
			startTimer(b, s)
			for done := 0; done < b.N; {
				ts, err := s.Claim(ctx, "bench", batch)
				if err != nil {
					b.Fatal(err)
				}
				if len(ts) == 0 {
					b.Fatalf("queue empty after %d of %d", done, b.N)
				}
				if _, err := s.Complete(ctx, outcomes(ts)); err != nil {
					b.Fatal(err)
				}
				done += len(ts)
			}
			report(b, s)
		})
	}
}

// BenchmarkEndToEnd is submit, claim, complete and read back, in batches, from two
// goroutines submitting and one draining: the Redis share of an end-to-end run.
func BenchmarkEndToEnd(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, _ := startStore(b, store.Config{})
			f := mkFunction(b, s, "bench")
			ctx := context.Background()
			inputs := make([][]byte, batch)
			for i := range inputs {
				inputs[i] = []byte("input")
			}
			startTimer(b, s)
			go func() {
				for done := 0; done < b.N; done += batch {
					if _, err := s.Submit(ctx, f, inputs[:min(batch, b.N-done)]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			for done := 0; done < b.N; {
				ts, err := s.Claim(ctx, "bench", batch)
				if err != nil {
					b.Fatal(err)
				}
				if len(ts) == 0 {
					continue
				}
				if _, err := s.Complete(ctx, outcomes(ts)); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Tasks(ctx, idsOf(ts)); err != nil {
					b.Fatal(err)
				}
				done += len(ts)
			}
			report(b, s)
		})
	}
}

// BenchmarkRead compares reading terminal tasks' records whole (Task: one HMGET; Tasks: a
// pipeline of them) with reading their summaries with the outputs read along (Summaries:
// one script), as /result (one id) and /wait (many) do. ns/op is per task.
func BenchmarkRead(b *testing.B) {
	s, _ := startStore(b, store.Config{})
	f := mkFunction(b, s, "bench")
	ctx := context.Background()
	ids := submitN(b, s, f, 1000)
	ts := claim(b, s, 1000)
	if _, err := s.Complete(ctx, outcomes(ts)); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("Tasks/ids=%d", n), func(b *testing.B) {
			startTimer(b, s)
			for done := 0; done < b.N; done += n {
				var err error
				if n == 1 {
					_, err = s.Task(ctx, ids[0])
				} else {
					_, err = s.Tasks(ctx, ids[:n])
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			report(b, s)
		})
		b.Run(fmt.Sprintf("Summaries/ids=%d", n), func(b *testing.B) {
			startTimer(b, s)
			for done := 0; done < b.N; done += n {
				if _, err := s.Summaries(ctx, ids[:n], 16<<10); err != nil {
					b.Fatal(err)
				}
			}
			report(b, s)
		})
	}
}

// BenchmarkWaitReplicas is Submit and a claim-complete round of the same batch, on a primary
// with one replica, without and with WaitReplicas 1: what waiting for the replica costs per
// task (docs/BENCHMARKS.md, "Waiting for replicas").
func BenchmarkWaitReplicas(b *testing.B) {
	primary := redistest.Start(b)
	_, pport, _ := strings.Cut(primary.Addr, ":")
	replica := redistest.Start(b, "--replicaof", "127.0.0.1", pport)
	rc := replica.Client(b)
	for i := 0; ; i++ {
		info, err := rc.Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			break
		}
		if i > 150 {
			b.Fatal("the replica is not in sync")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, batch := range []int{1, 32} {
		for _, wait := range []int{0, 1} {
			b.Run(fmt.Sprintf("batch=%d/wait=%d", batch, wait), func(b *testing.B) {
				s := newStore(b, primary.Client(b), store.Config{WaitReplicas: wait})
				f := mkFunction(b, s, "bench")
				ctx := context.Background()
				inputs := make([][]byte, batch)
				for i := range inputs {
					inputs[i] = []byte("input")
				}
				b.ResetTimer()
				for done := 0; done < b.N; done += batch {
					n := min(batch, b.N-done)
					if _, err := s.Submit(ctx, f, inputs[:n]); err != nil {
						b.Fatal(err)
					}
					ts, err := s.Claim(ctx, "bench", n)
					if err != nil {
						b.Fatal(err)
					}
					outs := make([]task.Outcome, len(ts))
					for i, t := range ts {
						outs[i] = task.Outcome{Ref: t.Ref(), Stdout: []byte("out")}
					}
					if _, err := s.Complete(ctx, outs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
