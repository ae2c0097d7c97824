package dispatch

import (
	"testing"
	"time"

	"faas/protocol"
)

// A connection is sent each module once per window, twice after registering again on it,
// and at most moduleByteBudget bytes of modules it has not acknowledged.
func TestModuleAllowance(t *testing.T) {
	now := time.Now()
	w := &remoteWorker{capacity: 4}
	if why := w.moduleRefusal("a", now); why != "" {
		t.Fatalf("first answer refused: %s", why)
	}
	w.moduleSent("a", 10, now)
	if w.moduleRefusal("a", now.Add(time.Second)) == "" {
		t.Fatal("a second answer within the window was allowed")
	}
	if why := w.moduleRefusal("b", now); why != "" {
		t.Fatalf("another module refused: %s", why)
	}
	if why := w.moduleRefusal("a", now.Add(protocol.ModuleWindow)); why != "" {
		t.Fatalf("refused after the window: %s", why)
	}

	// Registered again: one retry per module within the window, not more.
	w.retryUntil = now.Add(protocol.ModuleWindow)
	if why := w.moduleRefusal("a", now.Add(time.Second)); why != "" {
		t.Fatalf("the retry after a registration was refused: %s", why)
	}
	w.moduleSent("a", 10, now.Add(time.Second))
	if w.moduleRefusal("a", now.Add(2*time.Second)) == "" {
		t.Fatal("a third answer within the window was allowed")
	}

	// Bytes: at most the budget not acknowledged, whatever the window.
	v := &remoteWorker{capacity: 4}
	v.moduleSent("x", moduleByteBudget-100, now)
	if v.bytesRefusal(100) != "" {
		t.Fatal("a module that fits the budget was refused")
	}
	if v.bytesRefusal(101) == "" {
		t.Fatal("a module over the budget was allowed")
	}
	// A token sent before the module proves nothing; one sent after it does, once echoed.
	v.echoed("stale")
	v.tokenSent("t1")
	v.echoed("forged")
	if v.bytesRefusal(101) == "" {
		t.Fatal("an unknown token acknowledged the module")
	}
	v.echoed("t1")
	if why := v.bytesRefusal(moduleByteBudget); why != "" {
		t.Fatalf("refused after the acknowledgement: %s", why)
	}

	// A task sent on the control connection after the module acknowledges it when read; one
	// sent before (or on the REQ socket) does not.
	u := &remoteWorker{capacity: 4}
	u.taskSeq = 1
	before := flight{seq: 1}
	u.moduleSent("x", moduleByteBudget, now)
	u.readTask(before)
	u.readTask(flight{seq: 0})
	if u.bytesRefusal(1) == "" {
		t.Fatal("a task sent before the module acknowledged it")
	}
	u.taskSeq++
	u.readTask(flight{seq: u.taskSeq})
	if why := u.bytesRefusal(moduleByteBudget); why != "" {
		t.Fatalf("refused after a later task was read: %s", why)
	}
}
