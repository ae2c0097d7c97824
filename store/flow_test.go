package store_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"faas/store"
	"faas/task"
)

// coreFlow runs the life of tasks through every state on s.
func coreFlow(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := ctxT(t)
	f := mkFunction(t, s, "double")
	ids, err := s.Submit(ctx, f, [][]byte{[]byte("a"), {}, []byte("c")})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if n, err := s.QueueLen(ctx); err != nil || n != 3 {
		t.Fatalf("QueueLen = %d, %v; want 3", n, err)
	}
	r := mustTask(t, s, ids[0])
	if r.Status != task.Queued || r.FunctionID != f.ID || r.Attempts != 0 || r.CreatedAt.IsZero() {
		t.Fatalf("queued record = %+v", r)
	}
	ts := claim(t, s, 2)
	if len(ts) != 2 || ts[0].ID != ids[0] || ts[1].ID != ids[1] {
		t.Fatalf("Claim(2) = %+v; want %v in order", ts, ids[:2])
	}
	want := task.Task{ID: ids[0], FunctionID: f.ID, Name: "double", ModuleHash: f.ModuleHash,
		Input: []byte("a"), Limits: task.Limits{TimeoutMs: 1234}.WithDefaults(), Attempt: 1}
	if got := ts[0]; got.ID != want.ID || got.FunctionID != want.FunctionID || got.Name != want.Name ||
		got.ModuleHash != want.ModuleHash || !bytes.Equal(got.Input, want.Input) ||
		got.Limits != want.Limits || got.Attempt != want.Attempt {
		t.Fatalf("claimed %+v; want %+v", got, want)
	}
	if len(ts[1].Input) != 0 {
		t.Fatalf("empty input came back as %q", ts[1].Input)
	}
	if r := mustTask(t, s, ids[0]); r.Status != task.Running || r.Attempts != 1 || r.StartedAt.IsZero() {
		t.Fatalf("running record = %+v", r)
	}
	fail := task.Outcome{Ref: ts[1].Ref(), Stderr: []byte("boom"),
		Failure: &task.Failure{Kind: task.KindTrap, Message: "unreachable"}}
	n, err := s.Complete(ctx, []task.Outcome{ok(ids[0], 1, "aa"), fail})
	if err != nil || n != 2 {
		t.Fatalf("Complete = %d, %v; want 2", n, err)
	}
	recs, err := s.Tasks(ctx, []string{ids[0], ids[1], ids[2], "nope"})
	if err != nil {
		t.Fatalf("Tasks: %v", err)
	}
	if r := recs[0]; r.Status != task.Completed || string(r.Result) != "aa" || r.Error != nil ||
		r.Worker != "w1" || r.DurationMs != 7 || r.CPUUnits != 242_807 || r.FinishedAt.IsZero() {
		t.Fatalf("completed record = %+v", r)
	}
	if r := recs[1]; r.Status != task.Failed || r.Error == nil || r.Error.Kind != "trap" ||
		r.Error.Message != "unreachable" || string(r.Stderr) != "boom" || r.Result != nil {
		t.Fatalf("failed record = %+v (error %+v)", r, r.Error)
	}
	if recs[2].Status != task.Queued || recs[3].Status != "" || recs[3].ID != "nope" {
		t.Fatalf("records = %+v", recs)
	}
	if _, err := s.Task(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Task(unknown) err = %v; want ErrNotFound", err)
	}
	ts = claim(t, s, 10)
	if len(ts) != 1 || ts[0].ID != ids[2] {
		t.Fatalf("Claim = %+v; want %s", ts, ids[2])
	}
	if _, _, err := s.Requeue(ctx, refs(ts), "test"); err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	ts = claim(t, s, 10)
	if len(ts) != 1 || ts[0].Attempt != 2 {
		t.Fatalf("after requeue Claim = %+v; want attempt 2", ts)
	}
	if n, err := s.Complete(ctx, []task.Outcome{ok(ids[2], 2, "cc")}); n != 1 || err != nil {
		t.Fatalf("Complete = %d, %v", n, err)
	}
	if ts := claim(t, s, 10); len(ts) != 0 {
		t.Fatalf("Claim on empty queue = %+v", ts)
	}
}

func TestCoreFlowRedis(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	coreFlow(t, s)
}

// TestCoreFlowMiniredis checks the scripts and the subscribers on the embedded Redis of
// `faas dev`.
func TestCoreFlowMiniredis(t *testing.T) {
	c := startMiniredis(t)
	t.Run("flow", func(t *testing.T) { coreFlow(t, store.New(c, store.Config{})) })
	t.Run("done and tasks channels", func(t *testing.T) {
		s := store.New(c, store.Config{Prefix: "pubsub:"})
		ctx, cancel := context.WithCancel(ctxT(t))
		defer cancel()
		done := s.NewDone()
		go done.Run(ctx)
		wake := make(chan struct{}, 1)
		go s.ListenTasks(ctx, wake)
		<-done.Ready()
		waitWake(t, wake) // the wake-up after subscribing
		f := mkFunction(t, s, "f")
		ids := submitN(t, s, f, 2)
		waitWake(t, wake)
		ch, stop := done.Watch(ids)
		defer stop()
		ts := claim(t, s, 2)
		if n, err := s.Complete(ctx, outcomes(ts)); n != 2 || err != nil {
			t.Fatalf("Complete = %d, %v", n, err)
		}
		for range 2 {
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
				t.Fatal("watcher not woken on miniredis")
			}
		}
	})
}

func waitWake(tb testing.TB, wake <-chan struct{}) {
	tb.Helper()
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		tb.Fatal("no wake-up on the tasks channel")
	}
}

func startMiniredis(t *testing.T) *redis.Client {
	t.Helper()
	m := miniredis.NewMiniRedis()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := m.StartAddr(l.Addr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}
