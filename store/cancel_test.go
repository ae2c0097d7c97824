package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"faas/store"
	"faas/task"
)

// TestCancel runs on both Redis implementations: a QUEUED task and a RUNNING one end FAILED
// cancelled at once, exactly once (the running attempt's later outcome changes nothing),
// leave their queue, lease and namespace count, wake waiters, and only the RUNNING one is
// announced on the cancel channel; terminal, unknown, malformed and other namespaces' ids
// are left alone.
func TestCancel(t *testing.T) {
	for _, tc := range bothRedis {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, tc.c(t), store.Config{})
			ctx := ctxT(t)
			f := mkFunction(t, s, "f")
			other := inNS(t, s, f, "other")

			lctx, stopListen := context.WithCancel(ctx)
			defer stopListen()
			heard := make(chan string, 16)
			go s.ListenCancels(lctx, func(ids []string) {
				for _, id := range ids {
					heard <- id
				}
			})
			done := s.NewDone()
			go done.Run(lctx)
			<-done.Ready()

			ids := submitN(t, s, f, 4) // 0 runs, 1 completes, 2 and 3 stay queued
			running := claim(t, s, 2)
			if len(running) != 2 || running[0].ID != ids[0] {
				t.Fatalf("claimed %v, want %s first", running, ids[0])
			}
			if n, err := s.Complete(ctx, []task.Outcome{ok(ids[1], 1, "out")}); n != 1 || err != nil {
				t.Fatalf("Complete = %d, %v", n, err)
			}
			otherID := submitNS(t, s, other, 1)[0]
			watch, stop := done.Watch([]string{ids[0], ids[2]})
			defer stop()
			// The cancel channel's subscription must be in place before the cancel.
			waitSubscribed(t, s, "cancel")

			unknown := uuid.NewString()
			time.Sleep(30 * time.Millisecond) // ids[0] runs a while before its cancel
			got, err := s.Cancel(ctx, store.DefaultNamespace, []string{ids[0], ids[1], ids[2], unknown, otherID, "../x", ids[0]})
			if err != nil {
				t.Fatal(err)
			}
			want := []task.Status{task.Running, task.Completed, task.Queued, "", "", "", task.Failed}
			for i, c := range got {
				if c.Was != want[i] {
					t.Errorf("id %d (%s): was %q, want %q", i, c.ID, c.Was, want[i])
				}
			}
			if got[6].Kind != task.KindCancelled || got[6].Done() || !got[0].Done() || !got[2].Done() {
				t.Errorf("a cancelled task cancelled again: %+v; first %+v", got[6], got[0])
			}
			for _, id := range []string{ids[0], ids[2]} {
				r := mustTask(t, s, id)
				if r.Status != task.Failed || r.Error == nil || r.Error.Kind != task.KindCancelled || r.FinishedAt.IsZero() {
					t.Errorf("%s: %s %+v, want FAILED cancelled", id, r.Status, r.Error)
				}
			}
			if r := mustTask(t, s, ids[1]); r.Status != task.Completed {
				t.Errorf("completed task became %s", r.Status)
			}
			// The cancelled tasks are in their function's log like any outcome (once each).
			logged, _, err := s.Logs(ctx, f.ID, store.LogQuery{Failed: true})
			if err != nil {
				t.Fatal(err)
			}
			var cancelled []string
			for _, e := range logged {
				if e.Kind == task.KindCancelled {
					cancelled = append(cancelled, e.TaskID)
					// The time it ran until the cancel, for the RUNNING one; none for the QUEUED.
					if e.TaskID == ids[0] && e.DurationMs < 25 || e.TaskID == ids[2] && e.DurationMs != 0 {
						t.Errorf("%s logged with duration_ms %d", e.TaskID, e.DurationMs)
					}
				}
			}
			if len(cancelled) != 2 || !slices.Contains(cancelled, ids[0]) || !slices.Contains(cancelled, ids[2]) {
				t.Errorf("function log's cancelled tasks = %v, want %s and %s", cancelled, ids[0], ids[2])
			}
			if r := mustTask(t, s, otherID); r.Status != task.Queued {
				t.Errorf("another namespace's task became %s", r.Status)
			}
			// The running attempt's outcome arrives late: fenced off.
			if n, err := s.Complete(ctx, []task.Outcome{ok(ids[0], 1, "late")}); n != 0 || err != nil {
				t.Errorf("late outcome of a cancelled task: applied %d, %v", n, err)
			}
			if r := mustTask(t, s, ids[0]); r.Error == nil || r.Error.Kind != task.KindCancelled || r.Result != nil {
				t.Errorf("after the late outcome: %+v", r)
			}
			if n, _ := s.LeaseCount(ctx); n != 0 {
				t.Errorf("%d leases left, want 0", n)
			}
			if n, _ := s.QueueLen(ctx); n != 2 { // ids[3] and the other namespace's task
				t.Errorf("queues hold %d, want 2", n)
			}
			select {
			case id := <-heard:
				if id != ids[0] {
					t.Errorf("cancel channel announced %s, want only the RUNNING %s", id, ids[0])
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the cancel of a RUNNING task was not announced")
			}
			woken := map[string]bool{}
			for len(woken) < 2 {
				select {
				case id := <-watch:
					woken[id] = true
				case <-time.After(5 * time.Second):
					t.Fatalf("waiters woken for %v only", woken)
				}
			}
			// The namespace's unfinished count went down by the two cancelled: with a bound of
			// 3, ids[3] and two new tasks fit.
			if _, err := s.SubmitLimited(ctx, f, make([][]byte, 2), 3); err != nil {
				t.Errorf("submit after cancel: %v (the cancelled tasks still count)", err)
			}
			if _, err := s.SubmitLimited(ctx, f, make([][]byte, 1), 3); !errors.Is(err, store.ErrQuota) {
				t.Errorf("submit over the bound: %v, want ErrQuota", err)
			}
			// Only ids[3], the two new ones and the other namespace's are claimed.
			left := claim(t, s, 10)
			if len(left) != 4 || slices.ContainsFunc(left, func(tk task.Task) bool { return tk.ID == ids[2] }) {
				t.Errorf("claimed %d after cancel (%v); want 4, without the cancelled %s", len(left), left, ids[2])
			}
		})
	}
}

// A QUEUED task deep inside a long queue (beyond the bounded search from either end) is
// cancelled all the same; its dead entry is dropped by the claim that pops it.
func TestCancelDeepInQueue(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	ids := submitN(t, s, f, 2500)
	mid := ids[1250]
	got, err := s.Cancel(ctx, store.DefaultNamespace, []string{mid, ids[0], ids[2499]})
	if err != nil || !got[0].Done() || !got[1].Done() || !got[2].Done() {
		t.Fatalf("Cancel = %+v, %v", got, err)
	}
	if n, _ := s.QueueLen(ctx); n != 2498 {
		t.Errorf("queue holds %d, want 2498 (the ends removed, the middle left as a dead entry)", n)
	}
	claimed := claim(t, s, 3000)
	if len(claimed) != 2497 || slices.ContainsFunc(claimed, func(tk task.Task) bool { return tk.ID == mid }) {
		t.Errorf("claimed %d tasks (cancelled one among them: %v); want 2497 without it", len(claimed),
			slices.ContainsFunc(claimed, func(tk task.Task) bool { return tk.ID == mid }))
	}
}

func TestCancelBound(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	if _, err := s.Cancel(ctxT(t), store.DefaultNamespace, make([]string, store.MaxCancel+1)); err == nil {
		t.Fatal("a cancel of more than MaxCancel ids was accepted")
	}
}

// waitSubscribed waits until some client subscribes to the store's channel named name.
func waitSubscribed(t *testing.T, s *store.Store, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := store.Subscribers(ctxT(t), s, name)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("nobody subscribed to %s", name)
}
