package dispatch

import (
	"context"
	"testing"
	"time"

	"faas/protocol"
	"faas/samples"
	"faas/store"
)

// benchRemote drains b.N noop tasks through a dispatcher of mode and two workers of
// benchSlots each (all in this process, over tcp on loopback) and reports tasks/s. The tasks are
// submitted before the clock starts, in batches, like a backlog.
func benchRemote(b *testing.B, mode protocol.Mode) {
	f, fn := benchSetup(b, mode)
	// Warm up: both workers registered and the module loaded.
	f.waitTerminal(b, f.submit(b, fn, make([][]byte, 16)), time.Minute)

	inputs := make([][]byte, b.N)
	ids := f.submit(b, fn, inputs)
	b.ResetTimer()
	start := time.Now()
	waitInOrder(b, f.st, ids)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}

func BenchmarkPull(b *testing.B) { benchRemote(b, protocol.ModePull) }
func BenchmarkPush(b *testing.B) { benchRemote(b, protocol.ModePush) }

// BenchmarkLocalBaseline drains noop tasks in local mode (2 sandboxes in process), with the
// same harness, for comparison.
func BenchmarkLocalBaseline(b *testing.B) { benchRemote(b, protocol.ModeLocal) }

// benchSetup starts a dispatcher of mode (with two workers of benchSlots for pull and push;
// 2 in-process slots for local) and registers noop.
func benchSetup(b *testing.B, mode protocol.Mode) (*fixture, store.Function) {
	f := newFixture(b, mode)
	fn := f.register(b, "noop", samples.Noop)
	f.start(b, f.cfg)
	if mode.Remote() {
		f.startWorker(b, "w1", benchSlots)
		f.startWorker(b, "w2", benchSlots)
	}
	return f, fn
}

// benchLatency submits one noop task at a time and waits for its outcome through the
// store's done channel (as GET /result?wait does): submit-to-result latency, idle system.
func benchLatency(b *testing.B, mode protocol.Mode) {
	f, fn := benchSetup(b, mode)
	f.waitTerminal(b, f.submit(b, fn, make([][]byte, 4)), time.Minute) // warm up
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := f.st.NewDone()
	go done.Run(ctx)
	<-done.Ready()
	input := [][]byte{nil}
	var total time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		id := f.submit(b, fn, input)[0]
		ch, stop := done.Watch([]string{id})
		if r, err := f.st.Task(ctx, id); err != nil || !r.Status.Terminal() {
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
				b.Fatal("no result within 10s")
			}
		}
		stop()
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/task")
}

func BenchmarkPullLatency(b *testing.B)          { benchLatency(b, protocol.ModePull) }
func BenchmarkPushLatency(b *testing.B)          { benchLatency(b, protocol.ModePush) }
func BenchmarkLocalBaselineLatency(b *testing.B) { benchLatency(b, protocol.ModeLocal) }

// benchSlots is each benchmark worker's slot count: with tasks as short as noop, slots are
// pipeline depth more than parallelism.
const benchSlots = 8

// waitInOrder waits until every task is terminal, looking at a window at the front of ids:
// tasks leave the queue about in order, so this polls a few hundred records at a time and
// leaves Redis to the dispatcher.
func waitInOrder(b *testing.B, st *store.Store, ids []string) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for i := 0; i < len(ids); {
		recs, err := st.Tasks(context.Background(), ids[i:min(i+256, len(ids))])
		if err != nil {
			b.Fatal(err)
		}
		k := 0
		for k < len(recs) && recs[k].Status.Terminal() {
			k++
		}
		i += k
		if k < len(recs) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d tasks not terminal", len(ids)-i, len(ids))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
