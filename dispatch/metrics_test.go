package dispatch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"faas/internal/metrics/metricstest"
	"faas/protocol"
	"faas/samples"
	"faas/store"
	"faas/task"
)

// TestMetricsCore drives the core by hand: each way a task leaves it is counted once, under
// the right labels, and a lost task out of attempts is counted FAILED worker_lost.
func TestMetricsCore(t *testing.T) {
	f := newFixtureStore(t, protocol.ModeLocal, store.Config{MaxAttempts: 1})
	fn := f.register(t, "double", samples.DoubleWAT)
	ids := f.submit(t, fn, [][]byte{[]byte("1"), []byte("2"), []byte("3"), []byte("4"), []byte("5")})
	reg := prometheus.NewRegistry()
	m, err := newDispatchMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := newCore(f.st, Config{Mode: protocol.ModeLocal}.withDefaults(), quietLog(), m)
	ctx := context.Background()
	ts, err := c.claim(ctx, 10)
	if err != nil || len(ts) != 5 {
		t.Fatalf("claim: %d tasks, %v; want 5", len(ts), err)
	}
	if _, err := c.claim(ctx, 10); err != nil { // the queue is empty: a claim of 0
		t.Fatal(err)
	}

	c.finish(task.Outcome{Ref: ts[0].Ref(), Stdout: []byte("2"), Duration: 3 * time.Millisecond})
	c.finish(task.Outcome{Ref: ts[1].Ref(), Duration: 5 * time.Millisecond,
		Failure: &task.Failure{Kind: task.KindTrap, Message: "unreachable"}})
	c.finish(task.Outcome{Ref: ts[2].Ref(), Duration: 7 * time.Millisecond,
		Failure: &task.Failure{Kind: "made_up_by_a_worker", Message: "?"}})
	c.lost(ts[3].Ref())    // MaxAttempts 1: FAILED worker_lost
	c.release(ts[4].Ref()) // back to the queue, uncharged

	// The writer drains what it was handed, then returns.
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.run(stopped, stopped); err != nil {
		t.Fatal(err)
	}
	recs, err := f.st.Tasks(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if recs[3].Status != task.Failed || recs[3].Error == nil || recs[3].Error.Kind != task.KindWorkerLost {
		t.Fatalf("lost task: %s %+v, want FAILED worker_lost", recs[3].Status, recs[3].Error)
	}
	if recs[4].Status != task.Queued {
		t.Fatalf("released task: %s, want QUEUED", recs[4].Status)
	}

	got := metricstest.Gather(t, reg)
	got.Want(t, map[string]float64{
		`faas_dispatch_tasks_finished_total{status="COMPLETED",kind=""}`:           1,
		`faas_dispatch_tasks_finished_total{status="FAILED",kind="trap"}`:          1,
		`faas_dispatch_tasks_finished_total{status="FAILED",kind="other"}`:         1,
		`faas_dispatch_tasks_finished_total{status="FAILED",kind="worker_lost"}`:   1,
		`faas_dispatch_tasks_finished_total{status="FAILED",kind="timeout"}`:       0,
		`faas_dispatch_tasks_finished_total{status="FAILED",kind="exit"}`:          0,
		`faas_dispatch_tasks_finished_total{status="FAILED",kind="out_of_memory"}`: 0,
		"faas_dispatch_tasks_lost_total":                                           1,
		"faas_dispatch_tasks_released_total":                                       1,
		"faas_dispatch_claim_errors_total":                                         0,
	})
	for _, h := range []struct {
		name   string
		labels []string
		count  uint64
		sum    float64
	}{
		{"faas_dispatch_task_duration_seconds", []string{"status", "COMPLETED"}, 1, 0.003},
		{"faas_dispatch_task_duration_seconds", []string{"status", "FAILED"}, 2, 0.012},
		{"faas_dispatch_claim_batch_size", nil, 2, 5},
	} {
		t.Run(fmt.Sprint(h.name, h.labels), func(t *testing.T) {
			n, sum, ok := got.Histogram(h.name, h.labels...)
			if !ok || n != h.count || !near(sum, h.sum) {
				t.Errorf("count %d sum %v (found: %v), want count %d sum %v", n, sum, ok, h.count, h.sum)
			}
		})
	}

	t.Run("claim errors", func(t *testing.T) {
		f.redis.Stop()
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := c.claim(cctx, 1); err == nil {
			t.Fatal("a claim with Redis stopped succeeded")
		}
		metricstest.Gather(t, reg).Want(t, map[string]float64{"faas_dispatch_claim_errors_total": 1})
	})
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestMetricsLocal runs tasks in local mode: finished counts match the outcomes in Redis,
// and every claimed task was counted in a claim.
func TestMetricsLocal(t *testing.T) {
	f := newFixture(t, protocol.ModeLocal)
	fn := f.register(t, "double", samples.DoubleWAT)
	ids := f.submit(t, fn, [][]byte{[]byte("21"), []byte("x"), []byte("4"), []byte("y"), []byte("5")})
	reg := prometheus.NewRegistry()
	f.cfg.Metrics = reg
	f.startDispatcher(t)
	f.waitTerminal(t, ids, 30*time.Second)

	// Counted when handed to the writer, before Redis records them: final once terminal.
	got := metricstest.Gather(t, reg)
	got.Want(t, map[string]float64{
		`faas_dispatch_tasks_finished_total{status="COMPLETED",kind=""}`:  3,
		`faas_dispatch_tasks_finished_total{status="FAILED",kind="exit"}`: 2,
		"faas_dispatch_tasks_lost_total":                                  0,
	})
	if n, _, _ := got.Histogram("faas_dispatch_task_duration_seconds", "status", "FAILED"); n != 2 {
		t.Errorf("FAILED durations observed: %d, want 2", n)
	}
	if _, sum, _ := got.Histogram("faas_dispatch_claim_batch_size"); sum != 5 {
		t.Errorf("tasks claimed, summed over claims: %v, want 5", sum)
	}
}

// wantFinished checks the finished counters against records: one count per record, under
// its status and kind.
func wantFinished(t *testing.T, reg prometheus.Gatherer, recs []store.Record) {
	t.Helper()
	want := make(map[string]float64)
	for _, r := range recs {
		kind := ""
		if r.Error != nil {
			kind = string(r.Error.Kind)
		}
		want[fmt.Sprintf(`faas_dispatch_tasks_finished_total{status=%q,kind=%q}`, r.Status, kind)]++
	}
	metricstest.Gather(t, reg).Want(t, want)
}
