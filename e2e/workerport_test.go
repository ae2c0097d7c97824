package e2e

import (
	"strings"
	"testing"
	"time"

	"faas/internal/testutil"
	"faas/internal/zsock"
	"faas/protocol"
	"faas/task"
)

// TestWorkerPortAmplification: a registered peer that asks for a module again and again
// without reading is sent its bytes once in 10 s (then small "retry later" refusals), and a heartbeat of a
// million refs is dropped unread: the dispatcher's peak RSS stays bounded and a real worker
// keeps completing tasks. Before, 400 module requests took a dispatcher to 9.2 GB and such a
// heartbeat cost 1.2 GB.
func TestWorkerPortAmplification(t *testing.T) {
	p := newPlatform(t)
	dp, endpoint := p.dispatcher("dispatcher", "push")
	p.worker("worker", "push", 2, endpoint)
	peer := newTestPeer(t, endpoint, zsock.KeyPair{}, "", false)
	if !peer.register("greedy", protocol.ModePush, 1, 5*time.Second) {
		t.Fatal("the peer was not acknowledged")
	}
	ids := p.submit(4, 2000)
	var mine []task.Task
	testutil.WaitFor(t, 10*time.Second, "a task sent to the peer", func() bool {
		mine = peer.tasks(1, 200*time.Millisecond)
		return len(mine) > 0
	})
	hash := mine[0].ModuleHash
	for range 400 {
		peer.send(protocol.ModuleRequest{Worker: "greedy", Hash: hash})
	}
	refs := make([]task.Ref, 1_000_000)
	for i := range refs {
		refs[i] = task.Ref{ID: "00000000-0000-0000-0000-000000000000", Attempt: 1}
	}
	peer.send(protocol.Heartbeat{Sender: "greedy", Held: refs})

	withBytes, refused := 0, 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		m := peer.recv(200 * time.Millisecond)
		if mod, ok := m.(protocol.Module); ok {
			if len(mod.Wasm) > 0 {
				withBytes++
			} else if strings.HasPrefix(mod.Err, protocol.ModuleRetryLater) {
				refused++
			} else {
				t.Fatalf("module answer neither the bytes nor a retry-later refusal: %q", mod.Err)
			}
		}
	}
	t.Logf("400 module requests: %d answers with the module, %d refusals", withBytes, refused)
	// A connection is sent a module once in 10 s (dispatch/budget.go; an honest worker's
	// executors share one fetch).
	if withBytes != 1 {
		t.Fatalf("the module was sent %d times for 400 requests, want once", withBytes)
	}
	// The real worker still completes its tasks (the peer's is re-run once it is lost).
	rs := p.waitAll(ids, 30*time.Second)
	for _, r := range rs {
		if r.Status != task.Completed {
			t.Fatalf("task %s: %s %+v", r.ID, r.Status, r.Error)
		}
	}
	if dp.done() {
		t.Fatalf("dispatcher died: %v", dp.err)
	}
	hwm := peakRSS(t, dp.pid())
	t.Logf("dispatcher peak RSS %d MiB", hwm/mib)
	if hwm > 400*mib {
		t.Fatalf("dispatcher peak RSS %d MiB, above 400 MiB", hwm/mib)
	}
}
