package store_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/store"
	"faas/task"
)

func TestModulesAndFunctions(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)

	t.Run("module stored once", func(t *testing.T) {
		if err := s.PutModule(ctx, "h1", []byte("one")); err != nil {
			t.Fatal(err)
		}
		if err := s.PutModule(ctx, "h1", []byte("other")); err != nil {
			t.Fatal(err)
		}
		b, err := s.Module(ctx, "h1")
		if err != nil || string(b) != "one" {
			t.Fatalf("Module = %q, %v; want the first bytes", b, err)
		}
		if has, err := store.HasModule(ctx, s, "h1"); !has || err != nil {
			t.Fatalf("HasModule = %v, %v", has, err)
		}
	})
	t.Run("unknown module", func(t *testing.T) {
		if _, err := s.Module(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v; want ErrNotFound", err)
		}
	})

	old := mkFunction(t, s, "fn")
	time.Sleep(2 * time.Millisecond) // distinct creation times for the ordering check
	newer := mkFunction(t, s, "fn")
	time.Sleep(2 * time.Millisecond)
	other := mkFunction(t, s, "other")
	fresh := newStore(t, store.ClientOf(s), s.Config()) // no cache: reads Redis

	for _, tc := range []struct {
		name, key, wantID string
	}{
		{"by id", old.ID, old.ID},
		{"by newest id", newer.ID, newer.ID},
		{"by name is newest", "fn", newer.ID},
		{"other name", "other", other.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, st := range []*store.Store{s, fresh} {
				f, err := st.Function(ctx, tc.key)
				if err != nil || f.ID != tc.wantID {
					t.Fatalf("Function(%q) = %+v, %v; want id %s", tc.key, f, err, tc.wantID)
				}
				if f.Limits != (task.Limits{TimeoutMs: 1234}).WithDefaults() || f.ModuleHash == "" ||
					f.CreatedAt.IsZero() || f.ModuleSize == 0 {
					t.Fatalf("function fields = %+v", f)
				}
			}
		})
	}
	t.Run("unknown function", func(t *testing.T) {
		for _, key := range []string{"nope", uuid.NewString(), ""} {
			if _, err := fresh.Function(ctx, key); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Function(%q) err = %v; want ErrNotFound", key, err)
			}
		}
	})
	t.Run("abi", func(t *testing.T) {
		r := store.Function{ID: uuid.NewString(), Name: "reactor", ModuleHash: old.ModuleHash, ModuleSize: 1, ABI: store.ABIReactor}
		if err := s.CreateFunction(ctx, r); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = s.DeleteFunction(ctx, store.DefaultNamespace, r.ID) })
		for key, want := range map[string]string{r.ID: store.ABIReactor, old.ID: store.ABICommand} {
			for _, st := range []*store.Store{s, fresh} {
				if f, err := st.Function(ctx, key); err != nil || f.ABI != want {
					t.Fatalf("Function(%s).ABI = %q, %v; want %q", key, f.ABI, err, want)
				}
			}
		}
		bad := r
		bad.ID, bad.ABI = uuid.NewString(), "library"
		if err := s.CreateFunction(ctx, bad); err == nil || !strings.Contains(err.Error(), "unknown ABI") {
			t.Fatalf("CreateFunction with ABI library: %v", err)
		}
	})
	t.Run("list newest first", func(t *testing.T) {
		fs, err := fresh.Functions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range fs {
			got = append(got, f.ID)
		}
		want := []string{other.ID, newer.ID, old.ID}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("Functions = %v; want %v", got, want)
		}
	})
}

func TestRetention(t *testing.T) {
	s, srv := startStore(t, store.Config{TaskTTL: time.Hour})
	ctx := ctxT(t)
	c := srv.Client(t)
	p := s.Config().Prefix
	f := mkFunction(t, s, "f")
	ids := submitN(t, s, f, 2)
	for _, id := range ids {
		if ttl := c.PTTL(ctx, p+"task:"+id).Val(); ttl != -1 {
			t.Fatalf("queued task TTL = %v; want none", ttl)
		}
	}
	ts := claim(t, s, 2)
	if _, err := s.Complete(ctx, []task.Outcome{ok(ts[0].ID, 1, "x")}); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, p+"task:"+ts[1].ID).Val(); ttl != -1 {
		t.Fatalf("running task TTL = %v; want none", ttl)
	}
	ttl := c.PTTL(ctx, p+"task:"+ts[0].ID).Val()
	if ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("terminal task TTL = %v; want about 1h", ttl)
	}
	// A small input stays with the terminal record (the dashboard's "run again"); a larger
	// one than InputKept is dropped when the task ends.
	if in, ok, err := s.TaskInput(ctx, ts[0].ID); err != nil || !ok || string(in) != string(ts[0].Input) {
		t.Fatalf("terminal task's small input = %q, %v, %v; want %q kept", in, ok, err, ts[0].Input)
	}
	bigID, err := s.Submit(ctx, f, [][]byte{make([]byte, store.InputKept+1)})
	if err != nil {
		t.Fatal(err)
	}
	big := claim(t, s, 1)
	if len(big) != 1 || big[0].ID != bigID[0] {
		t.Fatalf("claimed %v; want %v", big, bigID)
	}
	if _, err := s.Complete(ctx, []task.Outcome{ok(big[0].ID, 1, "x")}); err != nil {
		t.Fatal(err)
	}
	if c.HExists(ctx, p+"task:"+big[0].ID, "input").Val() {
		t.Fatalf("terminal task still holds its input of %d bytes", store.InputKept+1)
	}
	if n := c.ZCard(ctx, p+"leases").Val(); n != 1 {
		t.Fatalf("leases = %d; want 1 (the running task)", n)
	}
	if ttl := c.PTTL(ctx, p+"module:"+f.ModuleHash).Val(); ttl != -1 {
		t.Fatalf("module TTL = %v; want none", ttl)
	}
}

func TestFirstTerminalWins(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	const n = 200
	submitN(t, s, f, n)
	ts := claim(t, s, n)
	if len(ts) != n {
		t.Fatalf("claimed %d; want %d", len(ts), n)
	}
	// Two goroutines complete every task, one with a result, one with a failure.
	var wg sync.WaitGroup
	applied := make([]int, 2)
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tk := range ts {
				o := ok(tk.ID, tk.Attempt, "winner-0")
				if g == 1 {
					o = task.Outcome{Ref: tk.Ref(), Failure: &task.Failure{Kind: task.KindExit, Message: "winner-1"}}
				}
				k, err := s.Complete(ctx, []task.Outcome{o})
				if err != nil {
					t.Error(err)
					return
				}
				applied[g] += k
			}
		}()
	}
	wg.Wait()
	if applied[0]+applied[1] != n {
		t.Fatalf("applied %d + %d; want %d in all", applied[0], applied[1], n)
	}
	recs, err := s.Tasks(ctx, idsOf(ts))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[task.Status]int{}
	for _, r := range recs {
		counts[r.Status]++
	}
	if counts[task.Completed] != applied[0] || counts[task.Failed] != applied[1] {
		t.Fatalf("records %v disagree with applied %v", counts, applied)
	}

	t.Run("late result changes nothing", func(t *testing.T) {
		for _, o := range []task.Outcome{ok(ts[0].ID, 1, "late"), ok(ts[0].ID, 2, "future"), ok("gone", 1, "x")} {
			if k, err := s.Complete(ctx, []task.Outcome{o}); k != 0 || err != nil {
				t.Fatalf("Complete(%+v) = %d, %v; want 0", o.Ref, k, err)
			}
		}
	})
	t.Run("result of an earlier attempt after requeue", func(t *testing.T) {
		id := submitN(t, s, f, 1)[0]
		first := claim(t, s, 1)
		if _, _, err := s.Requeue(ctx, refs(first), "lost"); err != nil {
			t.Fatal(err)
		}
		second := claim(t, s, 1)
		if len(second) != 1 || second[0].ID != id || second[0].Attempt != 2 {
			t.Fatalf("reclaim = %+v", second)
		}
		if k, _ := s.Complete(ctx, []task.Outcome{ok(id, 1, "stale")}); k != 0 {
			t.Fatal("stale attempt applied")
		}
		if k, _ := s.Complete(ctx, []task.Outcome{ok(id, 2, "fresh")}); k != 1 {
			t.Fatal("current attempt not applied")
		}
		if r := mustTask(t, s, id); string(r.Result) != "fresh" || r.Attempts != 2 {
			t.Fatalf("record = %+v", r)
		}
	})
}

func idsOf(ts []task.Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func TestRequeueMaxAttempts(t *testing.T) {
	for _, max := range []int{1, 3} {
		t.Run(fmt.Sprintf("max=%d", max), func(t *testing.T) {
			s, _ := startStore(t, store.Config{MaxAttempts: max})
			ctx := ctxT(t)
			f := mkFunction(t, s, "f")
			id := submitN(t, s, f, 1)[0]
			for attempt := 1; attempt <= max; attempt++ {
				ts := claim(t, s, 1)
				if len(ts) != 1 || ts[0].Attempt != attempt {
					t.Fatalf("attempt %d: claimed %+v", attempt, ts)
				}
				q, failed, err := s.Requeue(ctx, refs(ts), "worker w9 stopped heart-beating")
				if err != nil {
					t.Fatal(err)
				}
				wantQ, wantF := 1, 0
				if attempt == max {
					wantQ, wantF = 0, 1
				}
				if q != wantQ || failed != wantF {
					t.Fatalf("attempt %d: requeued %d failed %d; want %d %d", attempt, q, failed, wantQ, wantF)
				}
				// A second requeue of the same ref is a no-op.
				if q, failed, _ := s.Requeue(ctx, refs(ts), "again"); q+failed != 0 {
					t.Fatalf("duplicate requeue moved %d", q+failed)
				}
			}
			r := mustTask(t, s, id)
			if r.Status != task.Failed || r.Error == nil || r.Error.Kind != "worker_lost" || r.Attempts != max {
				t.Fatalf("record = %+v err %+v", r, r.Error)
			}
			if !strings.Contains(r.Error.Message, "w9 stopped heart-beating") ||
				!strings.Contains(r.Error.Message, fmt.Sprintf("attempt %d of %d", max, max)) {
				t.Fatalf("message %q is not readable", r.Error.Message)
			}
			if n, _ := s.QueueLen(ctx); n != 0 {
				t.Fatalf("queue = %d; want 0", n)
			}
			if n, _ := s.LeaseCount(ctx); n != 0 {
				t.Fatalf("leases = %d; want 0", n)
			}
		})
	}
}

func TestRelease(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	ids := submitN(t, s, f, 5)
	ts := claim(t, s, 3)
	if err := s.Release(ctx, refs(ts)); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.LeaseCount(ctx); n != 0 {
		t.Fatalf("leases = %d after release", n)
	}
	again := claim(t, s, 5)
	if strings.Join(idsOf(again), ",") != strings.Join(ids, ",") {
		t.Fatalf("order after release = %v; want %v", idsOf(again), ids)
	}
	for _, tk := range again {
		if tk.Attempt != 1 {
			t.Fatalf("released task %s at attempt %d; want 1 (not charged)", tk.ID, tk.Attempt)
		}
	}
	if err := s.Release(ctx, []task.Ref{{ID: ids[0], Attempt: 7}}); err != nil {
		t.Fatal(err)
	}
	if r := mustTask(t, s, ids[0]); r.Status != task.Running {
		t.Fatalf("wrong-attempt release moved the task: %+v", r)
	}
}

func TestRenewAndRecoverExpired(t *testing.T) {
	const lease = 150 * time.Millisecond
	s, _ := startStore(t, store.Config{LeaseTTL: lease, MaxAttempts: 2})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	ids := submitN(t, s, f, 3)
	ts := claim(t, s, 3)
	if len(ts) != 3 {
		t.Fatalf("claimed %d", len(ts))
	}
	if n, err := s.RecoverExpired(ctx); n != 0 || err != nil {
		t.Fatalf("RecoverExpired before expiry = %d, %v", n, err)
	}
	// Keep ts[0] renewed; let the others expire. The recoverer runs all along, as in a
	// dispatcher: one silent for LeaseTTL/2 is taken for an outage and waits (RecoverExpired).
	deadline := time.Now().Add(3 * lease)
	n := 0
	for time.Now().Before(deadline) {
		lost, err := s.Renew(ctx, refs(ts[:1]))
		if err != nil || len(lost) != 0 {
			t.Fatalf("Renew = %v, %v", lost, err)
		}
		k, err := s.RecoverExpired(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += k
		time.Sleep(lease / 5)
	}
	if n != 2 {
		t.Fatalf("RecoverExpired recovered %d; want 2", n)
	}
	if lost, _ := s.Renew(ctx, refs(ts)); strings.Join(lost, ",") != ids[1]+","+ids[2] {
		t.Fatalf("lost = %v; want %v", lost, ids[1:])
	}
	if r := mustTask(t, s, ids[0]); r.Status != task.Running {
		t.Fatalf("renewed task = %+v", r)
	}
	if k, _ := s.Complete(ctx, []task.Outcome{ok(ids[1], 1, "late")}); k != 0 {
		t.Fatal("late result of a recovered task applied")
	}
	again := claim(t, s, 10)
	if len(again) != 2 || again[0].Attempt != 2 {
		t.Fatalf("reclaimed %+v", again)
	}
	// Second expiry: attempts are used up → worker_lost.
	testutil.WaitFor(t, 5*time.Second, "second recovery", func() bool {
		n, err := s.RecoverExpired(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n == 3 || (n > 0 && mustTask(t, s, ids[1]).Status == task.Failed)
	})
	testutil.WaitFor(t, 5*time.Second, "ids[0] recovered too", func() bool {
		_, _ = s.RecoverExpired(ctx)
		return mustTask(t, s, ids[0]).Status == task.Queued
	})
	for _, id := range ids[1:] {
		if r := mustTask(t, s, id); r.Status != task.Failed || r.Error.Kind != "worker_lost" ||
			!strings.Contains(r.Error.Message, "lease expired") {
			t.Fatalf("record %+v (%+v)", r, r.Error)
		}
	}
}

func TestRecoverConcurrently(t *testing.T) {
	s, srv := startStore(t, store.Config{LeaseTTL: 50 * time.Millisecond, MaxAttempts: 5})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	const n = 500
	submitN(t, s, f, n)
	if got := len(claim(t, s, n)); got != n {
		t.Fatalf("claimed %d", got)
	}
	time.Sleep(60 * time.Millisecond) // every lease expires
	others := []*store.Store{s}
	for range 3 {
		others = append(others, store.New(srv.Client(t), s.Config()))
	}
	var wg sync.WaitGroup
	counts := make([]int, len(others))
	for i, st := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := st.RecoverExpired(ctx)
			if err != nil {
				t.Error(err)
			}
			counts[i] = k
		}()
	}
	wg.Wait()
	total := 0
	for _, c := range counts {
		total += c
	}
	if total != n {
		t.Fatalf("recovered %v = %d in all; want %d", counts, total, n)
	}
	if q, _ := s.QueueLen(ctx); q != n {
		t.Fatalf("queue = %d; want %d (each task once)", q, n)
	}
}

func TestClaimersNeverShare(t *testing.T) {
	s, srv := startStore(t, store.Config{})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	const n = 1000
	ids := submitN(t, s, f, n)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for g := range 4 {
		st := store.New(srv.Client(t), s.Config()) // separate clients, as separate dispatchers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ts, err := st.Claim(ctx, fmt.Sprintf("d%d", g), 1+g*7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ts) == 0 {
					return
				}
				mu.Lock()
				for _, tk := range ts {
					seen[tk.ID]++
				}
				mu.Unlock()
				if _, err := st.Complete(ctx, outcomes(ts)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct tasks; want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("task %s claimed %d times", id, c)
		}
	}
	recs, _ := s.Tasks(ctx, ids)
	for _, r := range recs {
		if r.Status != task.Completed || r.Attempts != 1 {
			t.Fatalf("record %+v", r)
		}
	}
}

func outcomes(ts []task.Task) []task.Outcome {
	out := make([]task.Outcome, len(ts))
	for i, tk := range ts {
		out[i] = ok(tk.ID, tk.Attempt, string(tk.Input))
	}
	return out
}

func TestClaimMissingFunction(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	ghost := mkFunction(t, s, "ghost")
	ids, err := s.Submit(ctx, ghost, [][]byte{[]byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteFunction(ctx, store.DefaultNamespace, ghost.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Submit(ctx, ghost, [][]byte{[]byte("y")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("submit to a deleted function: %v", err)
	}
	f := mkFunction(t, s, "real")
	real := submitN(t, s, f, 1)
	ts := claim(t, s, 5)
	if len(ts) != 1 || ts[0].ID != real[0] {
		t.Fatalf("claimed %+v; want only the real one", ts)
	}
	if r := mustTask(t, s, ids[0]); r.Status != task.Failed || r.Error.Kind != "internal" || !strings.Contains(r.Error.Message, "deleted") {
		t.Fatalf("ghost task = %+v", r)
	}
}

// Sent records the worker and connection of a task; CompleteFrom then applies an outcome
// only from that connection, whatever worker name the outcome carries.
func TestSentThenCompleteFrom(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	submitN(t, s, f, 1)
	ts := claim(t, s, 1)
	sent := store.SentTo{Worker: "w7", Via: "conn-a", Refs: append(refs(ts), task.Ref{ID: "gone", Attempt: 1})}
	if err := s.Sent(ctx, []store.SentTo{sent}); err != nil {
		t.Fatal(err)
	}
	if r := mustTask(t, s, ts[0].ID); r.Worker != "w7" || r.Status != task.Running {
		t.Fatalf("after Sent: worker = %q, status %s", r.Worker, r.Status)
	}
	if _, err := s.Task(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Sent created a record for an unknown task: %v", err)
	}
	o := task.Outcome{Ref: ts[0].Ref(), Stdout: []byte("forged"), Worker: "w7"}
	if n, err := s.CompleteFrom(ctx, []task.Outcome{o}, []string{"conn-b"}); err != nil || n != 0 {
		t.Fatalf("an outcome from another connection: applied %d, %v", n, err)
	}
	if r := mustTask(t, s, ts[0].ID); r.Status != task.Running {
		t.Fatalf("after a foreign outcome: status %s", r.Status)
	}
	o.Stdout = []byte("real")
	if n, err := s.CompleteFrom(ctx, []task.Outcome{o}, []string{"conn-a"}); err != nil || n != 1 {
		t.Fatalf("the outcome from its connection: applied %d, %v", n, err)
	}
	if r := mustTask(t, s, ts[0].ID); r.Status != task.Completed || string(r.Result) != "real" {
		t.Fatalf("after its outcome: %s %q", r.Status, r.Result)
	}
	if _, err := s.CompleteFrom(ctx, []task.Outcome{o}, []string{}); err == nil {
		t.Fatal("CompleteFrom took fewer connections than outcomes")
	}
}

// SentModule says yes only for a task sent on that connection, at its attempt, of that module.
func TestSentModule(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	submitN(t, s, f, 1)
	ts := claim(t, s, 1)
	if err := s.Sent(ctx, []store.SentTo{{Worker: "w", Via: "conn-a", Refs: refs(ts)}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		via, hash string
		refs      []task.Ref
		want      bool
	}{
		{"conn-a", f.ModuleHash, refs(ts), true},
		{"conn-b", f.ModuleHash, refs(ts), false},
		{"conn-a", "other-module", refs(ts), false},
		{"conn-a", f.ModuleHash, []task.Ref{{ID: ts[0].ID, Attempt: ts[0].Attempt + 1}}, false},
		{"conn-a", f.ModuleHash, nil, false},
	}
	for i, c := range cases {
		got, err := s.SentModule(ctx, c.via, c.hash, c.refs)
		if err != nil || got != c.want {
			t.Errorf("case %d: SentModule = %v, %v; want %v", i, got, err, c.want)
		}
	}
}

func TestDoneFanOut(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx, cancel := context.WithCancel(ctxT(t))
	done := s.NewDone()
	runErr := make(chan error, 1)
	go func() { runErr <- done.Run(ctx) }()
	<-done.Ready()

	f := mkFunction(t, s, "f")
	const n, watchersPer = 50, 20
	ids := submitN(t, s, f, n)
	type w struct {
		ch   <-chan string
		stop func()
		id   string
	}
	var ws []w
	for _, id := range ids {
		for range watchersPer {
			ch, stop := done.Watch([]string{id})
			ws = append(ws, w{ch, stop, id})
		}
	}
	all, stopAll := done.Watch(ids)
	if got := done.Watching(); got != n {
		t.Fatalf("Watching = %d; want %d", got, n)
	}
	ts := claim(t, s, n)
	if k, err := s.Complete(ctx, outcomes(ts)); k != n || err != nil {
		t.Fatalf("Complete = %d, %v", k, err)
	}
	for _, x := range ws {
		select {
		case got := <-x.ch:
			if got != x.id {
				t.Fatalf("watcher of %s got %s", x.id, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("watcher of %s not woken", x.id)
		}
		x.stop()
		x.stop() // idempotent
	}
	got := map[string]bool{}
	for len(got) < n {
		select {
		case id := <-all:
			got[id] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("multi-id watcher got %d of %d", len(got), n)
		}
	}
	stopAll()
	if got := done.Watching(); got != 0 {
		t.Fatalf("Watching = %d after stops; want 0", got)
	}
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run = %v; want nil at ctx end", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return at ctx end")
	}
}

func TestListenTasks(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx, cancel := context.WithCancel(ctxT(t))
	wake := make(chan struct{}, 1)
	runErr := make(chan error, 1)
	go func() { runErr <- s.ListenTasks(ctx, wake) }()
	select {
	case <-wake: // the wake-up after subscribing
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after subscribing")
	}
	f := mkFunction(t, s, "f")
	submitN(t, s, f, 3)
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after submit")
	}
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("ListenTasks = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ListenTasks did not return at ctx end")
	}
}

func TestUnavailable(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes")
	c, err := store.Open(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := newStore(t, c, store.Config{})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	ids := submitN(t, s, f, 5)

	done := s.NewDone()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go done.Run(runCtx)
	<-done.Ready()
	ch, stop := done.Watch(ids[:1])
	defer stop()
	wake := make(chan struct{}, 1)
	go s.ListenTasks(runCtx, wake)
	waitWake(t, wake)

	srv.Stop()
	ops := map[string]func() error{
		"ping":     func() error { return s.Ping(ctx) },
		"task":     func() error { _, err := s.Task(ctx, ids[0]); return err },
		"submit":   func() error { _, err := s.Submit(ctx, f, [][]byte{nil}); return err },
		"claim":    func() error { _, err := s.Claim(ctx, "o", 1); return err },
		"complete": func() error { _, err := s.Complete(ctx, []task.Outcome{ok(ids[0], 1, "")}); return err },
		"function": func() error { _, err := s.Function(ctx, "by-name"); return err },
		"recover":  func() error { _, err := s.RecoverExpired(ctx); return err },
		"queuelen": func() error { _, err := s.QueueLen(ctx); return err },
	}
	names := make([]string, 0, len(ops))
	for name := range ops {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run("stopped/"+name, func(t *testing.T) {
			err := ops[name]()
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("err = %v; want ErrUnavailable", err)
			}
		})
	}

	srv.Restart(t)
	testutil.WaitFor(t, 10*time.Second, "redis back", func() bool { return s.Ping(ctx) == nil })
	// The appendonly server kept the queue; the Done subscriber came back and woke its watcher.
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("watcher not woken after re-subscription")
	}
	waitWake(t, wake) // ListenTasks re-subscribed and woke its dispatcher
	ts := claim(t, s, 10)
	if len(ts) != 5 {
		t.Fatalf("claimed %d after restart; want 5", len(ts))
	}
	if k, err := s.Complete(ctx, outcomes(ts)); k != 5 || err != nil {
		t.Fatalf("Complete = %d, %v", k, err)
	}

	t.Run("paused", func(t *testing.T) {
		srv.Pause()
		start := time.Now()
		_, err := s.Task(ctx, ids[0])
		srv.Resume()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("err = %v; want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Fatalf("took %v to fail", d)
		}
		testutil.WaitFor(t, 10*time.Second, "redis resumed", func() bool { return s.Ping(ctx) == nil })
	})
	t.Run("caller cancel is not unavailable", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.Ping(cctx)
		if err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("err = %v; want a cancellation, not ErrUnavailable", err)
		}
	})
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		cluster   bool
		wantErr   bool
	}{
		{"redis url", "redis://127.0.0.1:6379/0", false, false},
		{"rediss url", "rediss://user:pw@example.com:6380/2", false, false},
		{"host port", "127.0.0.1:6379", false, false},
		{"cluster list", "10.0.0.1:7000,10.0.0.2:7000", true, false},
		{"empty", "", false, true},
		{"bad scheme", "http://x", false, true},
		{"bad list", "a:1,,b:2", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := store.Open(tc.url)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Open(%q) err = %v; want error %v", tc.url, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer c.Close()
			if s := store.New(c, store.Config{}); tc.cluster != strings.HasPrefix(s.Config().Prefix, "{") {
				t.Fatalf("prefix %q for cluster=%v", s.Config().Prefix, tc.cluster)
			}
		})
	}
}

func TestRequeueOwner(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	submitN(t, s, f, 4)
	mine, err := s.Claim(ctx, "d1", 3)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := s.Claim(ctx, "d2", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Complete(ctx, []task.Outcome{ok(mine[0].ID, 1, "")}); err != nil {
		t.Fatal(err)
	}
	n, err := store.RequeueOwner(ctx, s, "d1", "")
	if err != nil || n != 2 {
		t.Fatalf("RequeueOwner = %d, %v; want 2", n, err)
	}
	if r := mustTask(t, s, theirs[0].ID); r.Status != task.Running {
		t.Fatalf("another owner's task moved: %+v", r)
	}
	again := claim(t, s, 10)
	got, want := idsOf(again), idsOf(mine[1:])
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") || again[0].Attempt != 2 || again[1].Attempt != 2 {
		t.Fatalf("reclaimed %+v; want %v at attempt 2", again, idsOf(mine[1:]))
	}
}

func TestRequeueOrder(t *testing.T) {
	s, _ := startStore(t, store.Config{LeaseTTL: 50 * time.Millisecond})
	ctx := ctxT(t)
	f := mkFunction(t, s, "f")
	submitN(t, s, f, 6)
	first := claim(t, s, 3)
	submitN(t, s, f, 1) // behind the requeued ones
	if _, _, err := s.Requeue(ctx, refs(first), "lost"); err != nil {
		t.Fatal(err)
	}
	again := claim(t, s, 3)
	if strings.Join(idsOf(again), ",") != strings.Join(idsOf(first), ",") {
		t.Fatalf("requeued came back as %v; want %v (they run next, in order)", idsOf(again), idsOf(first))
	}
	time.Sleep(60 * time.Millisecond)
	if n, err := s.RecoverExpired(ctx); n != 3 || err != nil {
		t.Fatalf("RecoverExpired = %d, %v", n, err)
	}
	if third := claim(t, s, 3); len(third) != 3 {
		t.Fatalf("claimed %d after recovery", len(third))
	}
}
