package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"faas/store"
	"faas/task"
)

// inNS registers a function in namespace ns sharing f's module.
func inNS(t *testing.T, s *store.Store, f store.Function, ns string) store.Function {
	t.Helper()
	f.ID, f.Namespace = uuid.NewString(), ns
	if err := s.CreateFunction(ctxT(t), f); err != nil {
		t.Fatal(err)
	}
	return f
}

func submitNS(t *testing.T, s *store.Store, f store.Function, n int) []string {
	t.Helper()
	ids, err := s.Submit(ctxT(t), f, make([][]byte, n))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestClaimRoundRobinOverNamespaces(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	fa := mkFunction(t, s, "f")
	fb, fc := inNS(t, s, fa, "B"), inNS(t, s, fa, "C")
	a := submitNS(t, s, fa, 1000)
	b := submitNS(t, s, fb, 3)
	c := submitNS(t, s, fc, 1)
	if n, err := s.QueueLen(ctx); err != nil || n != 1004 {
		t.Fatalf("QueueLen %d, %v; want 1004", n, err)
	}
	// One claim of 3: one task of each namespace, each its oldest.
	got, err := s.Claim(ctx, "d1", 3)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, tk := range got {
		ids[tk.ID] = true
	}
	if len(got) != 3 || !ids[a[0]] || !ids[b[0]] || !ids[c[0]] {
		t.Fatalf("claim of 3 took %v; want %s, %s, %s", got, a[0], b[0], c[0])
	}
	// Claims of one, by two dispatchers, alternate A and B (C is drained), FIFO within each.
	var order []string
	for i := range 4 {
		got, err := s.Claim(ctx, []string{"d1", "d2"}[i%2], 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("claim: %v %v", got, err)
		}
		order = append(order, got[0].ID)
	}
	wantSet := map[string]bool{a[1]: true, a[2]: true, b[1]: true, b[2]: true}
	for i, id := range order {
		if !wantSet[id] {
			t.Fatalf("claim %d took %s; want the next of A or B (order %v)", i, id, order)
		}
		delete(wantSet, id)
	}
	if (order[0] == a[1]) == (order[1] == a[2]) && order[0] != b[1] && order[1] != b[1] {
		t.Fatalf("claims did not alternate namespaces: %v", order)
	}
	// A released task goes back to its own namespace's queue; C, back on the ring, is next.
	if err := s.Release(ctx, []task.Ref{{ID: c[0], Attempt: 1}}); err != nil {
		t.Fatal(err)
	}
	rec, _ := s.Task(ctx, c[0])
	if rec.Status != task.Queued || rec.Namespace != "C" {
		t.Fatalf("released task: %+v", rec)
	}
	if n, _ := s.QueueLen(ctx); n != 1004-7+1 {
		t.Fatalf("QueueLen %d after claims and a release; want %d", n, 1004-7+1)
	}
	if next, err := s.Claim(ctx, "d2", 1); err != nil || len(next) != 1 || next[0].ID != c[0] {
		t.Fatalf("claim after the release took %v (%v); want %s", next, err, c[0])
	}
}

func TestNamespaceFunctionsAndTaskQuota(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	fa := mkFunction(t, s, "double")
	fb := inNS(t, s, fa, "B")
	fb.Name = "double"
	// By id across namespaces: not found; by name: each its own.
	if _, err := s.FunctionIn(ctx, "B", fa.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("B reading A's id: %v", err)
	}
	if got, err := s.FunctionIn(ctx, "B", "double"); err != nil || got.ID != fb.ID {
		t.Fatalf("B's double: %v %v", got.ID, err)
	}
	if got, err := s.Function(ctx, "double"); err != nil || got.ID != fa.ID {
		t.Fatalf("default's double: %v %v", got.ID, err)
	}
	if l, _ := s.FunctionsIn(ctx, "B"); len(l) != 1 || l[0].ID != fb.ID {
		t.Fatalf("B's list: %v", l)
	}
	// Unfinished tasks: a call over the bound queues nothing; finishing makes room.
	if _, err := s.SubmitLimited(ctx, fb, make([][]byte, 3), 2); !errors.Is(err, store.ErrQuota) {
		t.Fatalf("3 tasks over a bound of 2: %v", err)
	}
	ids, err := s.SubmitLimited(ctx, fb, make([][]byte, 2), 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SubmitLimited(ctx, fb, make([][]byte, 1), 2); !errors.Is(err, store.ErrQuota) {
		t.Fatalf("third task over a bound of 2: %v", err)
	}
	got, err := s.Claim(ctx, "d", 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim: %v %v", got, err)
	}
	if _, err := s.Complete(ctx, []task.Outcome{{Ref: got[0].Ref()}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Requeue(context.Background(), []task.Ref{got[1].Ref()}, ""); err != nil {
		t.Fatal(err)
	}
	// One finished, one back in the queue: room for exactly one more.
	if _, err := s.SubmitLimited(ctx, fb, make([][]byte, 1), 2); err != nil {
		t.Fatalf("after one finished: %v", err)
	}
	rec, _ := s.Task(ctx, ids[0])
	if rec.Namespace != "B" {
		t.Fatalf("task namespace %q", rec.Namespace)
	}
}

// TestDeleteKeepsModulesOfOlderFunctions: functions written by a faas without module
// references (no modref entry) still hold their module when a newer function of the same
// module is deleted.
func TestDeleteKeepsModulesOfOlderFunctions(t *testing.T) {
	s, srv := startStore(t, store.Config{Prefix: "faas:"})
	ctx := ctxT(t)
	old := mkFunction(t, s, "old")
	// What an older faas wrote: no modref, no usage.
	rdb := srv.Client(t)
	if err := rdb.Del(ctx, "faas:modref:"+old.ModuleHash, "faas:usage").Err(); err != nil {
		t.Fatal(err)
	}
	newer := inNS(t, s, old, store.DefaultNamespace)
	d, err := s.DeleteFunction(ctx, store.DefaultNamespace, newer.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.ModuleDeleted {
		t.Fatal("the module was deleted while an older function uses it")
	}
	if _, err := s.Module(ctx, old.ModuleHash); err != nil {
		t.Fatalf("module of the older function: %v", err)
	}
	if d, err := s.DeleteFunction(ctx, store.DefaultNamespace, old.ID); err != nil || !d.ModuleDeleted {
		t.Fatalf("deleting the last function: %+v %v", d, err)
	}
	if n, _ := rdb.HGet(ctx, "faas:usage", "module_bytes").Int64(); n != 0 {
		t.Fatalf("module bytes of the default namespace: %d, want 0", n)
	}
}

// TestClaimBoundsFailedBacklog: a deleted function's queued backlog fails over several
// claims (each does bounded work) and never hides another namespace's task.
func TestClaimBoundsFailedBacklog(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	fa := mkFunction(t, s, "f")
	doomed := submitNS(t, s, fa, 2000)
	fb := inNS(t, s, fa, "B")
	if _, err := s.DeleteFunction(ctx, store.DefaultNamespace, fa.ID); err != nil {
		t.Fatal(err)
	}
	b := submitNS(t, s, fb, 1)
	got, err := s.Claim(ctx, "d", 1)
	if err != nil || len(got) != 1 || got[0].ID != b[0] {
		t.Fatalf("claim: %v %v; want B's task", got, err)
	}
	// The backlog fails over several empty claims, each bounded.
	for i := 0; i < 20; i++ {
		if _, err := s.Claim(ctx, "d", 10); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.QueueLen(ctx); n != 0 {
		t.Fatalf("%d tasks of the deleted function still queued after 20 claims", n)
	}
	if r := mustTask(t, s, doomed[1999]); r.Status != task.Failed {
		t.Fatalf("last doomed task: %+v", r)
	}
}

// TestDeleteAnnouncesEviction: the module's hash is published on <prefix>evict when its last
// function goes (in any namespace), and not while another function still uses it.
func TestDeleteAnnouncesEviction(t *testing.T) {
	s, srv := startStore(t, store.Config{Prefix: "ev:"})
	ctx := ctxT(t)
	fa := mkFunction(t, s, "f")
	fb := inNS(t, s, fa, "B")
	got := make(chan string, 4)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.ListenEvictions(lctx, func(h string) { got <- h }) }()
	rdb := srv.Client(t)
	for { // subscribed: a publish from now on is heard
		n, err := rdb.PubSubNumSub(ctx, "ev:evict").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n["ev:evict"] > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Junk on the channel (anyone with PUBLISH rights) is dropped, not evicted.
	if err := rdb.Publish(ctx, "ev:evict", "../../x").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteFunction(ctx, store.DefaultNamespace, fa.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteFunction(ctx, "B", fb.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h != fa.ModuleHash {
			t.Fatalf("evicted %q, want %q (the junk, or the module while B still used it)", h, fa.ModuleHash)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no eviction announced after the last function went")
	}
	time.Sleep(100 * time.Millisecond) // a second announcement would have arrived by now
	stop()
	if err := <-done; err != nil {
		t.Fatalf("ListenEvictions: %v", err)
	}
	select {
	case h := <-got:
		t.Fatalf("a second eviction %q", h)
	default:
	}
}
