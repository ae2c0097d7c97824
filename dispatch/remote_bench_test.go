package dispatch

import (
	"testing"
	"time"

	"faas/samples"
)

// benchRemote drains b.N noop tasks through a dispatcher of mode and two workers of 4 slots
// each (all in this process, over tcp on loopback) and reports tasks/s. The tasks are
// submitted before the clock starts, in batches, like a backlog.
func benchRemote(b *testing.B, mode string) {
	f := newRemoteFixture(b, mode)
	fn := f.register(b, "noop", samples.Noop)
	f.start(b, f.cfg)
	f.startWorker(b, "w1", 4)
	f.startWorker(b, "w2", 4)
	// Warm up: both workers registered and the module loaded.
	f.waitTerminal(b, f.submit(b, fn, make([][]byte, 16)), time.Minute)

	inputs := make([][]byte, b.N)
	ids := f.submit(b, fn, inputs)
	b.ResetTimer()
	start := time.Now()
	f.waitTerminal(b, ids, 5*time.Minute)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}

func BenchmarkPull(b *testing.B) { benchRemote(b, "pull") }
func BenchmarkPush(b *testing.B) { benchRemote(b, "push") }
