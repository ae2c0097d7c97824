package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"faas/client"
	"faas/dispatch"
	"faas/protocol"
	"faas/sandbox"
	"faas/server"
	"faas/store"
)

// rest measures end to end over HTTP with -c concurrent clients (mode rest) or one (latency).
func rest(ctx context.Context, o options, st *store.Store, sb *sandbox.Sandbox, fn store.Function,
	input []byte, log *slog.Logger) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var scfg server.Config
	var copts []client.Option
	if o.keys {
		key, err := server.NewKey()
		if err != nil {
			return err
		}
		ring, err := server.ParseKeys(strings.NewReader("bench "+key+" rate=1e9 burst=1000000000 tasks=1000000000\n"), server.Quota{})
		if err != nil {
			return err
		}
		scfg.Keys = ring
		copts = append(copts, client.WithAPIKey(key))
		fn.ID, fn.Namespace = uuid.NewString(), "bench"
		if err := st.CreateFunction(ctx, fn); err != nil {
			return err
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := st.NewDone()
	srv := server.New(st, sb, done, scfg, log)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = done.Run(runCtx) }()
	go func() { defer wg.Done(); _ = srv.Serve(runCtx, ln) }()
	go func() {
		defer wg.Done()
		_ = dispatch.Run(runCtx, st, sb, dispatch.Config{Mode: protocol.ModeLocal, Workers: o.workers}, log)
	}()
	defer func() { stop(); wg.Wait() }()

	c := client.New("http://"+ln.Addr().String(), copts...)
	conc := o.conc
	if o.mode == "latency" {
		conc = 1
	}
	// Warm up: connections, the compiled module, the subscription.
	for range 50 {
		if _, err := roundTrip(ctx, c, fn.ID, input); err != nil {
			return err
		}
	}
	lat := make([][]time.Duration, conc)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var cw sync.WaitGroup
	start := time.Now()
	for w := range conc {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for next.Add(1) <= int64(o.n) {
				d, err := roundTrip(ctx, c, fn.ID, input)
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
				lat[w] = append(lat[w], d)
			}
		}()
	}
	cw.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))] }
	fmt.Printf("mode=%s keys=%t module=%s tasks=%d clients=%d workers=%d seconds=%.3f tasks_per_sec=%.0f p50_ms=%.3f p99_ms=%.3f\n",
		o.mode, o.keys, o.module, len(all), conc, o.workers, elapsed.Seconds(), float64(len(all))/elapsed.Seconds(),
		ms(q(0.5)), ms(q(0.99)))
	return nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func roundTrip(ctx context.Context, c *client.Client, fnID string, input []byte) (time.Duration, error) {
	t0 := time.Now()
	id, err := c.Execute(ctx, fnID, input)
	if err != nil {
		return 0, err
	}
	t, err := c.Result(ctx, id, 10*time.Second)
	if err != nil {
		return 0, err
	}
	if t.Status != "COMPLETED" {
		return 0, fmt.Errorf("task %s: %s %+v", id, t.Status, t.Error)
	}
	return time.Since(t0), nil
}
