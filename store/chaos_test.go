package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"faas/internal/testutil"
	"faas/store"
	"faas/task"
)

// TestEveryTaskOneTerminalState drives tasks through random fates from several claimers at
// once — completed (sometimes twice), lost silently (the lease expires), declared lost
// (Requeue), handed back (Release) — with recoverers running concurrently, and checks that
// every task ends in exactly one terminal state, announced on the done channel once. With
// one shard and with four (tasks, leases and recovery spread over four key sets).
func TestEveryTaskOneTerminalState(t *testing.T) {
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) { everyTaskOneTerminalState(t, shards) })
	}
}

func everyTaskOneTerminalState(t *testing.T, shards int) {
	s, srv := startStore(t, store.Config{LeaseTTL: 30 * time.Millisecond, MaxAttempts: 3, Shards: shards})
	ctx, cancel := context.WithTimeout(ctxT(t), 60*time.Second)
	defer cancel()
	f := mkFunction(t, s, "f")

	done := s.NewDone()
	go done.Run(ctx)
	<-done.Ready()
	const n = 600
	ids := submitN(t, s, f, n)
	ch, stop := done.Watch(ids)
	defer stop()
	var announced sync.Map
	var dupAnnounce atomic.Int64
	go func() {
		for id := range ch {
			if _, loaded := announced.LoadOrStore(id, true); loaded {
				dupAnnounce.Add(1)
			}
		}
	}()

	var applied, terminalByLoss atomic.Int64
	work, stopWork := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for g := range 4 {
		st := store.New(srv.Client(t), s.Config())
		wg.Add(2)
		go func() { // claimer with random fates
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			for work.Err() == nil {
				ts, err := st.Claim(work, "d", 1+rng.IntN(8))
				if err != nil {
					if work.Err() == nil {
						t.Error(err)
					}
					return
				}
				if len(ts) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				var complete []task.Outcome
				var requeue, release []task.Ref
				for _, tk := range ts {
					switch p := rng.IntN(10); {
					case p < 5:
						complete = append(complete, ok(tk.ID, tk.Attempt, "r"))
						if p == 0 { // a duplicate report
							complete = append(complete, ok(tk.ID, tk.Attempt, "dup"))
						}
					case p < 7: // lost silently
					case p < 9:
						requeue = append(requeue, tk.Ref())
					default:
						release = append(release, tk.Ref())
					}
				}
				k, err := st.Complete(work, complete)
				applied.Add(int64(k))
				_, failed, err2 := st.Requeue(work, requeue, "chaos")
				terminalByLoss.Add(int64(failed))
				err3 := st.Release(work, release)
				if e := firstErr(err, err2, err3); e != nil && work.Err() == nil {
					t.Error(e)
					return
				}
			}
		}()
		go func() { // recoverer
			defer wg.Done()
			for work.Err() == nil {
				if _, err := st.RecoverExpired(work); err != nil && work.Err() == nil {
					t.Error(err)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	testutil.WaitFor(t, 50*time.Second, "every task terminal", func() bool {
		recs, err := s.Tasks(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if !r.Status.Terminal() {
				return false
			}
		}
		return true
	})
	stopWork()
	wg.Wait()

	recs, _ := s.Tasks(ctx, ids)
	var completed, lost int64
	for _, r := range recs {
		switch {
		case r.Status == task.Completed && string(r.Result) == "r":
			completed++
		case r.Status == task.Failed && r.Error.Kind == "worker_lost" && r.Attempts == 3:
			lost++
		default:
			t.Fatalf("unexpected record %+v (%+v)", r, r.Error)
		}
	}
	if completed != applied.Load() {
		t.Fatalf("%d COMPLETED records but %d outcomes applied", completed, applied.Load())
	}
	if completed+lost != n {
		t.Fatalf("%d completed + %d lost != %d", completed, lost, n)
	}
	testutil.WaitFor(t, 5*time.Second, "every end announced", func() bool {
		c := 0
		announced.Range(func(any, any) bool { c++; return true })
		return c == n
	})
	if d := dupAnnounce.Load(); d != 0 {
		t.Fatalf("%d ends announced twice", d)
	}
	if q, _ := s.QueueLen(ctx); q != 0 {
		t.Fatalf("queue = %d at the end", q)
	}
	if l, _ := s.LeaseCount(ctx); l != 0 {
		t.Fatalf("leases = %d at the end", l)
	}
	t.Logf("%d completed, %d worker_lost (%d by Requeue)", completed, lost, terminalByLoss.Load())
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
