package dispatch

import (
	"testing"
	"time"

	"faas/protocol"
)

// A connection is sent each module once per window, twice after registering again on it,
// and at most moduleByteBudget bytes of modules per window.
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

	// Bytes: the budget of the window, whatever the modules.
	v := &remoteWorker{capacity: 4}
	v.moduleSent("x", moduleByteBudget-100, now)
	if v.bytesRefusal(100, now) != "" {
		t.Fatal("a module that fits the budget was refused")
	}
	if v.bytesRefusal(101, now) == "" {
		t.Fatal("a module over the budget was allowed")
	}
	if why := v.bytesRefusal(moduleByteBudget, now.Add(protocol.ModuleWindow)); why != "" {
		t.Fatalf("refused in the next window: %s", why)
	}
}
