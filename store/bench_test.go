package store_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"faas/store"
)

// redisUsec is the time Redis spent executing commands since the last CONFIG RESETSTAT
// (INFO commandstats), a measure of the server's CPU cost less sensitive to machine load
// than wall time.
func redisUsec(tb testing.TB, c redis.UniversalClient) float64 {
	tb.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	total := 0.0
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_eval") { // eval, evalsha: the store's scripts
			continue
		}
		_, rest, _ := strings.Cut(line, "usec=")
		v, _, _ := strings.Cut(rest, ",")
		f, _ := strconv.ParseFloat(v, 64)
		total += f
	}
	return total
}

// startTimer resets Redis's command statistics and the benchmark timer.
func startTimer(b *testing.B, s *store.Store) {
	b.Helper()
	if err := s.Client().ConfigResetStat(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
}

func report(b *testing.B, s *store.Store) {
	b.Helper()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
	b.ReportMetric(redisUsec(b, s.Client())/float64(b.N), "redis-µs/task")
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
