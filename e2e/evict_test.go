package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"faas/internal/testutil"
	"faas/samples"
	"faas/store"
	"faas/task"
)

// cachedCode returns the compiled code file of module hash in the processes' compilation
// cache, as sandbox isolation records it (faas-modules/<hash> → faas-index/<key> → file),
// or "" if the cache holds none.
func cachedCode(hash string) string {
	key, err := os.ReadFile(filepath.Join(cacheDir, "faas-modules", hash))
	if err != nil {
		return ""
	}
	rel, err := os.ReadFile(filepath.Join(cacheDir, "faas-index", string(key)))
	if err != nil {
		return ""
	}
	path := filepath.Join(cacheDir, string(rel))
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}

// TestDeleteForgetsOnWorker: with the built binary, a module run by a push worker is in its
// on-disk compilation cache; once its last function is deleted, the dispatcher's EVICT makes
// the worker remove it; registered again, it runs again (compiled anew).
func TestDeleteForgetsOnWorker(t *testing.T) {
	p := newPlatform(t)
	dp, endpoint := p.dispatcher("dispatcher", "push")
	wp := p.worker("worker", "push", 2, endpoint)
	fn := p.addFunction("fib", samples.Fib, task.Limits{})
	run := func(fn store.Function) {
		t.Helper()
		ids, err := p.st.Submit(context.Background(), fn, [][]byte{[]byte("20")})
		if err != nil {
			t.Fatal(err)
		}
		r := p.waitAll(ids, 30*time.Second)[0]
		if r.Status != task.Completed || string(r.Result) != "6765" {
			t.Fatalf("fib(20): %s %q %+v", r.Status, r.Result, r.Error)
		}
	}
	run(fn)
	code := cachedCode(fn.ModuleHash)
	if code == "" {
		t.Fatal("the worker's compilation cache does not hold the module it ran")
	}
	d, err := p.st.DeleteFunction(context.Background(), store.DefaultNamespace, fn.ID)
	if err != nil || !d.ModuleDeleted {
		t.Fatalf("delete: %+v %v", d, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the worker to remove the module's compiled code", func() bool {
		_, err := os.Stat(code)
		return os.IsNotExist(err) && cachedCode(fn.ModuleHash) == ""
	})
	run(p.addFunction("fib", samples.Fib, task.Limits{}))
	if cachedCode(fn.ModuleHash) == "" {
		t.Fatal("registered again and run, the module is not in the cache again")
	}
	if dp.done() || wp.done() {
		t.Fatalf("a process died: dispatcher %v, worker %v", dp.err, wp.err)
	}
}
