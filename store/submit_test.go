package store_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"faas/internal/redistest"
	"faas/store"
)

// bothRedis are the two Redis implementations a store runs on: the embedded one of
// 'faas dev' (miniredis, Lua in gopher-lua) and a real redis-server.
var bothRedis = []struct {
	name string
	c    func(t *testing.T) redis.UniversalClient
}{
	{"miniredis", func(t *testing.T) redis.UniversalClient { return startMiniredis(t) }},
	{"redis", func(t *testing.T) redis.UniversalClient { return redistest.Start(t).Client(t) }},
}

// The documented batch maximum (10,000 inputs) must go through on the embedded Redis of
// 'faas dev' (gopher-lua) as on a real one: before chunking, gopher-lua overflowed its
// registry past ~2,600 ids and failed after every task was written.
func TestSubmitMaxBatch(t *testing.T) {
	for _, tc := range bothRedis {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c(t)
			s := newStore(t, c, store.Config{})
			f := mkFunction(t, s, "f")
			inputs := make([][]byte, 10_000)
			for i := range inputs {
				inputs[i] = []byte{byte(i)}
			}
			ids, err := s.Submit(ctxT(t), f, inputs)
			if err != nil || len(ids) != len(inputs) {
				t.Fatalf("Submit of 10,000 = %d ids, %v", len(ids), err)
			}
			if n, err := s.QueueLen(ctxT(t)); err != nil || n != int64(len(inputs)) {
				t.Fatalf("queue holds %d (%v), want %d", n, err, len(inputs))
			}
			recs, err := s.Tasks(ctxT(t), []string{ids[0], ids[len(ids)-1]})
			if err != nil || recs[0].Status != "QUEUED" || recs[1].Status != "QUEUED" {
				t.Fatalf("records = %+v, %v", recs, err)
			}
		})
	}
}

// A submission whose script fails writes nothing, on both Redis implementations.
func TestSubmitFailureLeavesNothing(t *testing.T) {
	for _, tc := range bothRedis {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c(t)
			s := newStore(t, c, store.Config{Prefix: "atomic:"})
			f := mkFunction(t, s, "f")
			// A queue key of the wrong type makes the script fail.
			if err := c.Set(ctxT(t), "atomic:queue", "not a list", 0).Err(); err != nil {
				t.Fatal(err)
			}
			before := countKeys(t, c, "atomic:task:*")
			_, err := s.Submit(ctxT(t), f, make([][]byte, 3000))
			if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
				t.Fatalf("Submit onto a broken queue = %v, want a WRONGTYPE error", err)
			}
			if after := countKeys(t, c, "atomic:task:*"); after != before {
				t.Fatalf("a failed submission left %d task records", after-before)
			}
		})
	}
}

// Withdraw deletes the QUEUED tasks of a submission and reports the ones already claimed.
func TestWithdraw(t *testing.T) {
	s, _ := startStore(t, store.Config{})
	f := mkFunction(t, s, "f")
	ids := submitN(t, s, f, 3)
	claimed := claim(t, s, 1) // the oldest: ids[0]
	err := store.Withdraw(ctxT(t), s, f.ID, ids)
	if err == nil || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("Withdraw with one claimed = %v, want it named", err)
	}
	for _, id := range ids {
		_, err := s.Task(ctxT(t), id)
		if id == claimed[0].ID {
			if err != nil {
				t.Fatalf("the claimed task was withdrawn: %v", err)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("task %s still there after Withdraw: %v", id, err)
		}
	}
	if got := claim(t, s, 10); len(got) != 0 {
		t.Fatalf("withdrawn tasks were claimed: %v", got)
	}
}

func countKeys(t *testing.T, c redis.UniversalClient, pattern string) int {
	t.Helper()
	keys, err := c.Keys(ctxT(t), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// Summaries reads records without their outputs (unless small enough to come along), and
// the outputs' stored size.
func TestSummaries(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testSummaries(t, redistest.Start(t).Client(t)) })
	t.Run("miniredis", func(t *testing.T) { testSummaries(t, startMiniredis(t)) })
}

func testSummaries(t *testing.T, c redis.UniversalClient) {
	s := newStore(t, c, store.Config{})
	f := mkFunction(t, s, "f")
	ids := submitN(t, s, f, 40) // more than one script reads: the pipelined path too
	ts := claim(t, s, 1)
	if n, err := s.Complete(ctxT(t), outcomes(ts)); n != 1 || err != nil {
		t.Fatalf("Complete = %d, %v", n, err)
	}
	full, err := s.Tasks(ctxT(t), ids)
	if err != nil {
		t.Fatal(err)
	}
	if full[0].Status != "COMPLETED" || len(full[0].Result) == 0 {
		t.Fatalf("the completed task: %+v", full[0])
	}
	for _, n := range []int{2, len(ids)} {
		for _, inline := range []int64{0, 1 << 10} {
			sums, err := s.Summaries(ctxT(t), append(ids[:n:n], "nope"), inline)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				want := full[i]
				want.OutputBytes = int64(len(want.Result) + len(want.Stderr))
				if want.OutputBytes > inline {
					want.Result, want.Stderr = nil, nil
				}
				if !reflect.DeepEqual(sums[i], want) {
					t.Errorf("%d ids, inline %d: summary %d = %+v, want %+v", n, inline, i, sums[i], want)
				}
			}
			if sums[n].Status != "" || sums[n].ID != "nope" {
				t.Errorf("a missing task's summary = %+v", sums[n])
			}
		}
	}
}
