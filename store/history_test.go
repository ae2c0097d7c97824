package store_test

import (
	"errors"
	"testing"
	"time"

	"faas/store"
	"faas/task"
)

func TestHistoryRedis(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	history(t, s)
}

func TestHistoryMiniredis(t *testing.T) {
	history(t, store.New(startMiniredis(t), store.Config{Prefix: "hist:"}))
}

// history completes 5 tasks and fails 2 of function a, completes 1 of function b, and
// reads them back from the overview, the function figures and the recent indexes.
func history(t *testing.T, s *store.Store) {
	ctx := ctxT(t)
	a, b := mkFunction(t, s, "a"), mkFunction(t, s, "b")
	idsA := submitN(t, s, a, 7)
	idsB := submitN(t, s, b, 2) // one stays queued
	ts := claim(t, s, 9)
	if len(ts) != 9 {
		t.Fatalf("claimed %d, want 9", len(ts))
	}
	byID := map[string]task.Task{}
	for _, tk := range ts {
		byID[tk.ID] = tk
	}
	var outs []task.Outcome
	for i, id := range idsA {
		o := ok(id, byID[id].Attempt, "x")
		o.Duration = time.Duration(10*(i+1)) * time.Millisecond
		if i >= 5 {
			o.Failure = &task.Failure{Kind: task.KindTrap, Message: "boom"}
			o.Stderr = []byte("stack")
		}
		outs = append(outs, o)
	}
	outs = append(outs, ok(idsB[0], byID[idsB[0]].Attempt, "y"))
	if n, err := s.Complete(ctx, outs); err != nil || n != 8 {
		t.Fatalf("Complete = %d, %v; want 8", n, err)
	}
	// A duplicate outcome is neither applied nor counted again.
	if n, err := s.Complete(ctx, outs[:1]); err != nil || n != 0 {
		t.Fatalf("duplicate Complete = %d, %v; want 0", n, err)
	}
	o, err := s.Overview(ctx, store.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if o.Completed != 6 || o.Failed != 2 || o.Running != 1 || o.Queued != 0 {
		t.Fatalf("overview counts = %+v", o)
	}
	if len(o.Series) != int(store.HistorySpan/store.HistoryStep) {
		t.Fatalf("series has %d intervals", len(o.Series))
	}
	var c, f int64
	for _, iv := range o.Series {
		c, f = c+iv.Completed, f+iv.Failed
	}
	if c != 6 || f != 2 {
		t.Fatalf("series sums to %d completed, %d failed; want 6, 2", c, f)
	}
	st, err := s.FunctionStats(ctx, store.DefaultNamespace, []string{a.ID, b.ID})
	if err != nil {
		t.Fatal(err)
	}
	sa := st[a.ID]
	if sa.Completed != 5 || sa.Failed != 2 || st[b.ID].Completed != 1 {
		t.Fatalf("function stats = %+v", st)
	}
	// run times 10..70 ms: the median is 40 ms, within a histogram bucket (±10%).
	if sa.P50Ms < 36 || sa.P50Ms > 44 || sa.P99Ms < 63 || sa.P99Ms > 77 {
		t.Fatalf("p50 %.1f, p99 %.1f; want about 40 and 70", sa.P50Ms, sa.P99Ms)
	}

	failed, err := s.Recent(ctx, store.DefaultNamespace, store.RecentQuery{Status: task.Failed, Limit: 10})
	if err != nil || len(failed.Tasks) != 2 || failed.Next != "" {
		t.Fatalf("failed page = %+v, %v", failed, err)
	}
	for _, r := range failed.Tasks {
		if r.Status != task.Failed || r.FunctionID != a.ID {
			t.Fatalf("failed page holds %+v", r)
		}
	}
	// Paging through function a, 3 at a time, visits each of its 7 tasks once.
	seen := map[string]bool{}
	q := store.RecentQuery{FunctionID: a.ID, Limit: 3}
	for pages := 0; ; pages++ {
		p, err := s.Recent(ctx, store.DefaultNamespace, q)
		if err != nil || pages > 5 {
			t.Fatalf("page %d: %+v, %v", pages, p, err)
		}
		for _, r := range p.Tasks {
			if seen[r.ID] || r.FunctionID != a.ID {
				t.Fatalf("task %s seen twice or of another function", r.ID)
			}
			seen[r.ID] = true
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if len(seen) != 7 {
		t.Fatalf("paging saw %d tasks of a, want 7", len(seen))
	}
	done, err := s.Recent(ctx, store.DefaultNamespace, store.RecentQuery{Status: task.Completed, Limit: 100})
	if err != nil || len(done.Tasks) != 6 {
		t.Fatalf("completed page has %d tasks, %v; want 6", len(done.Tasks), err)
	}
	future, err := s.Recent(ctx, store.DefaultNamespace, store.RecentQuery{Since: time.Now().Add(time.Hour), Limit: 10})
	if err != nil || len(future.Tasks) != 0 {
		t.Fatalf("since an hour ahead: %+v, %v", future, err)
	}
	if _, err := s.Recent(ctx, store.DefaultNamespace, store.RecentQuery{Cursor: "nonsense", Limit: 10}); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
	other, err := s.Overview(ctx, "other")
	if err != nil || other.Completed != 0 {
		t.Fatalf("another namespace sees %+v, %v", other, err)
	}
}
