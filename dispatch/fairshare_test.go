package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"faas/internal/testutil"
	"faas/protocol"
	"faas/samples"
	"faas/store"
)

// TestFairShare: namespace A holds 10,000 queued tasks of 1 s on two slots; a task that
// namespace B submits then starts within 1.5 s (from its own record), in every mode.
func TestFairShare(t *testing.T) {
	for _, mode := range []protocol.Mode{protocol.ModeLocal, protocol.ModePull, protocol.ModePush} {
		t.Run(string(mode), func(t *testing.T) {
			f := newFixture(t, mode)
			fnA := f.register(t, "sleep", samples.Sleep)
			fnB := fnA
			fnB.ID, fnB.Namespace = uuid.NewString(), "B"
			if err := f.st.CreateFunction(context.Background(), fnB); err != nil {
				t.Fatal(err)
			}
			backlog := f.submit(t, fnA, repeat(10_000, "1000"))
			f.startDispatcher(t)
			if mode != protocol.ModeLocal {
				f.startWorker(t, "w1", 2)
			}
			// Let the pool fill with A's tasks before B arrives.
			f.waitAny(t, backlog[:2], "A's first tasks running", func(r store.Record) bool { return r.Status == "RUNNING" })
			time.Sleep(300 * time.Millisecond)
			idB := f.submit(t, fnB, repeat(1, "10"))[0]
			var rec store.Record
			testutil.WaitFor(t, 10*time.Second, "B's task started", func() bool {
				rec = f.records(t, []string{idB})[0]
				return !rec.StartedAt.IsZero()
			})
			wait := rec.StartedAt.Sub(rec.CreatedAt)
			t.Logf("B waited %v behind A's backlog", wait)
			if wait > 1500*time.Millisecond {
				t.Fatalf("B's task started %v after it was queued behind A's 10,000; want within 1.5s", wait)
			}
			if n, err := f.st.QueueLen(context.Background()); err != nil || n < 9_900 {
				t.Fatalf("queue length %d (%v): A's backlog should still be there", n, err)
			}
		})
	}
}
