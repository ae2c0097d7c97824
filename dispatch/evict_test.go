package dispatch

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"faas/internal/testutil"
	"faas/protocol"
	"faas/samples"
	"faas/sandbox"
	"faas/store"
	"faas/worker"
)

// init plays the compiling child of sandbox isolation when this test binary is run as one
// (the isolated sandboxes of these tests use it as Isolation.Binary).
func init() {
	if len(os.Args) < 2 || os.Args[1] != sandbox.ChildCommand {
		return
	}
	fs := flag.NewFlagSet(sandbox.ChildCommand, flag.ExitOnError)
	dir := fs.String("cache-dir", "", "")
	mem := fs.Int64("compile-memory", 0, "")
	timeout := fs.Duration("compile-timeout", 0, "")
	_ = fs.Parse(os.Args[2:])
	if err := sandbox.SetChildLimits(sandbox.ChildLimits{Memory: *mem, Timeout: *timeout}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := sandbox.RunChild(context.Background(), os.Stdin, *dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, sandbox.ErrInvalidModule) {
			os.Exit(sandbox.ChildExitRefused)
		}
		os.Exit(1)
	}
	os.Exit(0)
}

// isolatedSandbox is a sandbox that compiles in child processes into a cache of its own, as
// the daemons' do: its on-disk entries can be found by module hash.
func isolatedSandbox(tb testing.TB) *sandbox.Sandbox {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	sb, err := sandbox.New(context.Background(), sandbox.Config{CacheDir: tb.TempDir(), Isolate: &sandbox.Isolation{Binary: exe, Log: quietLog()}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sb.Close(context.Background()) })
	return sb
}

// waitEvictListener waits until a dispatcher listens for deleted modules: a deletion from
// then on is heard.
func (f *fixture) waitEvictListener(tb testing.TB) {
	tb.Helper()
	rdb := f.redis.Client(tb)
	testutil.WaitFor(tb, 5*time.Second, "the dispatcher's eviction subscription", func() bool {
		n, err := rdb.PubSubNumSub(context.Background(), "faas:evict").Result()
		return err == nil && n["faas:evict"] > 0
	})
}

// runDouble submits one task of fn and checks it answers 42.
func (f *fixture) runDouble(tb testing.TB, fn store.Function) {
	tb.Helper()
	ids := f.submit(tb, fn, [][]byte{[]byte("21")})
	r := f.waitTerminal(tb, ids, 20*time.Second)[0]
	if string(r.Result) != "42" {
		tb.Fatalf("task of %s: %+v, want 42", fn.Name, r)
	}
}

// TestDeleteEvictsFromWorker: a module whose last function is deleted leaves a pull or push
// worker's compiled cache and its on-disk cache (EVICT over real ZeroMQ); registered again,
// the same bytes are fetched and compiled again and run.
func TestDeleteEvictsFromWorker(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(string(mode), func(t *testing.T) { deleteEvictsFromWorker(t, mode) })
	}
}

func deleteEvictsFromWorker(t *testing.T, mode protocol.Mode) {
	f := newFixture(t, mode)
	f.startDispatcher(t)
	wsb := isolatedSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := worker.Run(ctx, wsb, worker.Config{Mode: f.mode, Slots: 2, Endpoint: f.endpoint, ID: "w1", HeartbeatInterval: fastBeat}, testLog()); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	f.waitEvictListener(t)

	fn := f.register(t, "double", samples.DoubleC)
	hash := fn.ModuleHash
	f.runDouble(t, fn)
	if !wsb.Loaded(hash) || !wsb.OnDisk(hash) {
		t.Fatalf("worker after a task: loaded %v, on disk %v; want both", wsb.Loaded(hash), wsb.OnDisk(hash))
	}
	d, err := f.st.DeleteFunction(ctx, store.DefaultNamespace, fn.ID)
	if err != nil || !d.ModuleDeleted {
		t.Fatalf("delete: %+v %v", d, err)
	}
	testutil.WaitFor(t, 5*time.Second, "the worker to forget the module", func() bool {
		return !wsb.Loaded(hash) && !wsb.OnDisk(hash)
	})

	again := f.register(t, "double", samples.DoubleC)
	f.runDouble(t, again)
	if !wsb.Loaded(hash) || !wsb.OnDisk(hash) {
		t.Fatalf("worker after re-registering: loaded %v, on disk %v; want both (compiled again)", wsb.Loaded(hash), wsb.OnDisk(hash))
	}
}

// TestDeleteEvictsLocal: local mode drops a deleted module from its own sandbox, in memory
// and on disk.
func TestDeleteEvictsLocal(t *testing.T) {
	f := newFixture(t, protocol.ModeLocal)
	f.sb = isolatedSandbox(t)
	f.startDispatcher(t)
	f.waitEvictListener(t)
	fn := f.register(t, "double", samples.DoubleC)
	f.runDouble(t, fn)
	if !f.sb.Loaded(fn.ModuleHash) || !f.sb.OnDisk(fn.ModuleHash) {
		t.Fatal("module not cached after its task")
	}
	if _, err := f.st.DeleteFunction(context.Background(), store.DefaultNamespace, fn.ID); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "the dispatcher to forget the module", func() bool {
		return !f.sb.Loaded(fn.ModuleHash) && !f.sb.OnDisk(fn.ModuleHash)
	})
}

// The hub's module cache forgets an evicted module, and only it.
func TestHubEvictedDropsCachedModule(t *testing.T) {
	h := &hub{log: quietLog(), workers: map[string]*remoteWorker{},
		modules: map[string][]byte{"a": make([]byte, 10), "b": make([]byte, 5)}, moduleBytes: 15}
	h.evicted("a")
	h.evicted("unknown")
	if _, ok := h.modules["a"]; ok || h.moduleBytes != 5 || len(h.modules) != 1 {
		t.Fatalf("after evicting a: %d modules, %d bytes; want b only (5 bytes)", len(h.modules), h.moduleBytes)
	}
}
