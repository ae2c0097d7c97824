package server_test

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"faas/client"
	"faas/dispatch"
	"faas/samples"
	"faas/server"
)

// benchEnv is newEnv plus a real listener served by Serve and a local dispatcher, so that
// a benchmark measures the whole REST path: client → HTTP → store → dispatcher → result.
func benchEnv(b *testing.B, workers int) (*env, *client.Client) {
	b.Helper()
	e := newEnv(b, server.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := server.New(e.st, nil, e.done, server.Config{}, slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ctx, ln) })
	wg.Go(func() {
		_ = dispatch.Run(ctx, e.st, e.sb, dispatch.Config{Mode: "local", Workers: workers, Owner: "bench"},
			slog.New(slog.DiscardHandler))
	})
	b.Cleanup(func() { cancel(); wg.Wait() })
	return e, client.New("http://" + ln.Addr().String())
}

// BenchmarkSubmitToResult runs one task at a time: execute, then result with ?wait=.
// It reports the median and p99 latency from submit to result.
func BenchmarkSubmitToResult(b *testing.B) {
	e, c := benchEnv(b, 2)
	ctx := context.Background()
	fn := e.register(b, "noop", samples.Noop, nil)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		id, err := c.Execute(ctx, fn, nil)
		if err != nil {
			b.Fatal(err)
		}
		t, err := c.Result(ctx, id, 5*time.Second)
		if err != nil || t.Status != client.StatusCompleted {
			b.Fatalf("%+v %v", t, err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkThroughput runs many clients at once, each submitting a task and waiting for
// its result; it reports tasks/s end to end.
func BenchmarkThroughput(b *testing.B) {
	e, c := benchEnv(b, 2)
	ctx := context.Background()
	fn := e.register(b, "noop", samples.Noop, nil)
	const clients = 64
	var next atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				id, err := c.Execute(ctx, fn, nil)
				if err != nil {
					b.Error(err)
					return
				}
				t, err := c.Result(ctx, id, 10*time.Second)
				if err != nil || t.Status != client.StatusCompleted {
					b.Errorf("%+v %v", t, err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "tasks/s")
	reportLatency(b, lat)
}

// BenchmarkBatch submits tasks 1000 at a time through /execute_batch and collects them
// with /wait.
func BenchmarkBatch(b *testing.B) {
	e, c := benchEnv(b, 2)
	ctx := context.Background()
	fn := e.register(b, "noop", samples.Noop, nil)
	b.ResetTimer()
	start := time.Now()
	for left := b.N; left > 0; {
		n := min(left, 1000)
		left -= n
		ids, err := c.ExecuteBatch(ctx, fn, make([][]byte, n))
		if err != nil {
			b.Fatal(err)
		}
		for len(ids) > 0 {
			done, err := c.Wait(ctx, ids, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			finished := make(map[string]bool, len(done))
			for _, t := range done {
				finished[t.TaskID] = true
			}
			ids = slices.DeleteFunc(ids, func(id string) bool { return finished[id] })
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
