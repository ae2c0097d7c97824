package store_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/internal/testutil"
	"faas/store"
	"faas/task"
)

// TestLiveRegistry: a published dispatcher is listed with its workers until its TTL runs
// out; a removed one at once; a dispatcher with 10,000 workers writes a bounded entry.
func TestLiveRegistry(t *testing.T) {
	s, srv := startStore(t, store.Config{})
	ctx := ctxT(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := store.Dispatcher{ID: "a-1", Mode: "push", Address: "127.0.0.1:5555", Version: "v1", StartedAt: now,
		HeardAt: now, Slots: 4, Running: 1, Workers: []store.LiveWorker{{ID: "w1", Slots: 4, Running: 1, Done: 3, HeardAt: now}}}
	b := store.Dispatcher{ID: "b-2", Mode: "local", Version: "v1", StartedAt: now, HeardAt: now, Slots: 2}
	if err := s.PublishDispatcher(ctx, a, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.PublishDispatcher(ctx, b, time.Second); err != nil {
		t.Fatal(err)
	}
	if alive, err := s.AnyDispatcher(ctx); !alive || err != nil {
		t.Fatalf("AnyDispatcher = %v, %v", alive, err)
	}
	ds, err := s.Dispatchers(ctx)
	if err != nil || len(ds) != 2 {
		t.Fatalf("Dispatchers = %+v, %v; want 2", ds, err)
	}
	if got, _ := json.Marshal(ds[0]); !strings.Contains(string(got), `"workers":[{"id":"w1","slots":4,"running":1,"done":3,`) ||
		ds[0].Address != a.Address || !ds[0].StartedAt.Equal(now) {
		t.Fatalf("dispatcher a = %s", got)
	}
	if len(ds[1].Workers) != 0 || ds[1].Workers == nil {
		t.Fatalf("local dispatcher's workers = %#v; want an empty list", ds[1].Workers)
	}
	// b's TTL (1s) runs out; a stays.
	testutil.WaitFor(t, 5*time.Second, "the expired dispatcher to leave the list", func() bool {
		ds, err := s.Dispatchers(ctx)
		return err == nil && len(ds) == 1 && ds[0].ID == "a-1"
	})
	if err := s.RemoveDispatcher(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	if ds, err := s.Dispatchers(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("after remove: %+v, %v", ds, err)
	}
	if alive, err := s.AnyDispatcher(ctx); alive || err != nil {
		t.Fatalf("AnyDispatcher with none = %v, %v", alive, err)
	}
	var big store.Dispatcher
	big = store.Dispatcher{ID: "big", Mode: "pull", HeardAt: now, Slots: 10000, Running: 5000}
	for i := range 10000 {
		big.Workers = append(big.Workers, store.LiveWorker{ID: fmt.Sprintf("worker-%05d", i), Slots: 1, Running: i % 2, HeardAt: now})
	}
	if err := s.PublishDispatcher(ctx, big, time.Minute); err != nil {
		t.Fatal(err)
	}
	keys, _ := srv.Client(t).Keys(ctx, "*{live}:dispatcher:big").Result()
	if len(keys) != 1 {
		t.Fatalf("keys %v", keys)
	}
	size, _ := srv.Client(t).StrLen(ctx, keys[0]).Result()
	ds, _ = s.Dispatchers(ctx)
	if size > 20_000 || len(ds) != 1 || len(ds[0].Workers) != store.MaxLiveWorkers || ds[0].WorkersOmitted != 9900 || ds[0].Workers[0].Running != 1 {
		t.Fatalf("10,000 workers: %d bytes, %d listed, %d omitted", size, len(ds[0].Workers), ds[0].WorkersOmitted)
	}
	if err := s.PublishDispatcher(ctx, store.Dispatcher{ID: strings.Repeat("x", 300)}, time.Second); err == nil {
		t.Fatal("a 300-byte id was accepted")
	}
}

// TestFunctionLogs: recorded outcomes (only those applied) reach their function's log, on
// real Redis and on miniredis (faas dev); --since and --failed select; a follower wakes on
// the next outcome.
func TestFunctionLogs(t *testing.T) {
	for name, c := range map[string]redis.UniversalClient{"redis": nil, "miniredis": startMiniredis(t)} {
		t.Run(name, func(t *testing.T) {
			var s *store.Store
			if c == nil {
				s, _ = startStore(t, store.Config{})
			} else {
				s = newStore(t, c, store.Config{})
			}
			ctx := ctxT(t)
			f := mkFunction(t, s, "logged")
			other := mkFunction(t, s, "other")
			submitN(t, s, f, 3)
			ts := claim(t, s, 3)
			fail := task.Outcome{Ref: ts[1].Ref(), Failure: &task.Failure{Kind: task.KindExit, Message: "exit code 2"},
				Stderr: []byte("double: not an integer\nmore"), Duration: 3 * time.Millisecond, Worker: "w1"}
			outs := []task.Outcome{ok(ts[0].ID, ts[0].Attempt, "1"), fail, ok(ts[0].ID, ts[0].Attempt, "dup")}
			if n, err := s.Complete(ctx, outs); n != 2 || err != nil {
				t.Fatalf("Complete = %d, %v", n, err)
			}
			all, cursor, err := s.Logs(ctx, f.ID, store.LogQuery{})
			if err != nil || len(all) != 2 || all[0].TaskID != ts[0].ID || all[1].TaskID != ts[1].ID {
				t.Fatalf("Logs = %+v, %v; want the 2 applied outcomes in order", all, err)
			}
			e := all[1]
			if e.Status != task.Failed || e.Kind != task.KindExit || string(e.Stderr) != "double: not an integer\nmore" ||
				e.DurationMs != 3 || e.Attempt != ts[1].Attempt || e.FunctionID != f.ID || time.Since(e.Time) > time.Minute {
				t.Fatalf("failed entry = %+v", e)
			}
			if failed, _, _ := s.Logs(ctx, f.ID, store.LogQuery{Failed: true}); len(failed) != 1 || failed[0].TaskID != ts[1].ID {
				t.Fatalf("failed only = %+v", failed)
			}
			if none, _, _ := s.Logs(ctx, other.ID, store.LogQuery{Since: time.Minute}); len(none) != 0 {
				t.Fatalf("other function's log = %+v", none)
			}
			if last, _, _ := s.Logs(ctx, f.ID, store.LogQuery{Limit: 1}); len(last) != 1 || last[0].TaskID != ts[1].ID {
				t.Fatalf("limit 1 = %+v", last)
			}
			// Nothing new: the follower waits out its block.
			if got, c2, err := s.FollowLogs(ctx, f.ID, cursor, 50*time.Millisecond); len(got) != 0 || c2 != cursor || err != nil {
				t.Fatalf("FollowLogs with nothing new = %+v, %q, %v", got, c2, err)
			}
			done := make(chan []store.LogEntry, 1)
			go func() {
				got, _, err := s.FollowLogs(ctx, f.ID, cursor, 5*time.Second)
				if err != nil {
					t.Error(err)
				}
				done <- got
			}()
			time.Sleep(100 * time.Millisecond)
			if n, err := s.Complete(ctx, []task.Outcome{ok(ts[2].ID, ts[2].Attempt, "3")}); n != 1 || err != nil {
				t.Fatalf("Complete = %d, %v", n, err)
			}
			if got := <-done; len(got) != 1 || got[0].TaskID != ts[2].ID || got[0].Status != task.Completed {
				t.Fatalf("followed = %+v", got)
			}
			if !store.ValidLogCursor(cursor) || store.ValidLogCursor("1-") || store.ValidLogCursor("$") {
				t.Fatal("ValidLogCursor")
			}
		})
	}
}
