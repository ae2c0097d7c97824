package store_test

import (
	"testing"
	"time"

	"faas/internal/testutil"

	"faas/store"
	"faas/task"
)

// TestLostTasksRecorded: a task failed worker_lost (its worker lost once more than attempts
// allow, or its lease expired on the last attempt) is in its function's logs and in the
// dashboard's counters like any failure; a task put back in the queue is not.
func TestLostTasksRecorded(t *testing.T) {
	s, _ := startStore(t, store.Config{MaxAttempts: 1, LeaseTTL: time.Second})
	ctx := ctxT(t)
	f := mkFunction(t, s, "lost")
	ids := submitN(t, s, f, 2)
	ts := claim(t, s, 2)
	refs := []task.Ref{ts[0].Ref()}
	requeued, failed, err := s.Requeue(ctx, refs, "worker w1 stopped answering")
	if err != nil || requeued != 0 || failed != 1 {
		t.Fatalf("Requeue = %d, %d, %v; want 0, 1", requeued, failed, err)
	}
	logged, _, err := s.Logs(ctx, f.ID, store.LogQuery{Failed: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(logged) != 1 || logged[0].TaskID != ts[0].ID || logged[0].Kind != task.KindWorkerLost ||
		logged[0].Message == "" {
		t.Fatalf("function log = %+v; want %s failed worker_lost with its message", logged, ts[0].ID)
	}
	o, err := s.Overview(ctx, store.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if o.Failed != 1 || o.Running != 1 {
		t.Fatalf("overview %+v; want 1 failed, 1 running", o)
	}
	st, err := s.FunctionStats(ctx, store.DefaultNamespace, []string{f.ID})
	if err != nil {
		t.Fatal(err)
	}
	if st[f.ID].Failed != 1 {
		t.Fatalf("function stats %+v; want 1 failed", st[f.ID])
	}
	// Its failure is listed with the function's failures.
	page, err := s.Recent(ctx, store.DefaultNamespace, store.RecentQuery{FunctionID: f.ID, Status: task.Failed, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Tasks) != 1 || page.Tasks[0].ID != ts[0].ID {
		t.Fatalf("recent failed of the function = %+v; want %s", page.Tasks, ts[0].ID)
	}
	// The other one's lease expires (its dispatcher died): failed worker_lost, recorded too.
	var n int
	testutil.WaitFor(t, 10*time.Second, "the lease to expire", func() bool {
		r, err := s.RecoverExpired(ctx)
		n += r
		return err == nil && n > 0
	})
	logged, _, err = s.Logs(ctx, f.ID, store.LogQuery{Failed: true})
	if err != nil || len(logged) != 2 || logged[0].TaskID != ids[1] && logged[1].TaskID != ids[1] {
		t.Fatalf("function log after the expiry = %+v, %v; want both tasks", logged, err)
	}
	if o, err := s.Overview(ctx, store.DefaultNamespace); err != nil || o.Failed != 2 || o.Running != 0 {
		t.Fatalf("overview %+v, %v; want 2 failed, none running", o, err)
	}
}
