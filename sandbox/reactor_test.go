package sandbox

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"faas/samples"
	"faas/task"
)

func TestReactorDouble(t *testing.T) {
	s := sharedSandbox(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		wasm []byte
		exit uint32
	}{{"go", samples.DoubleGoReactor, 1}, {"c", samples.DoubleCReactor, 2}, {"as", samples.DoubleASReactor, 2}} {
		t.Run(c.name, func(t *testing.T) {
			info, err := s.Validate(ctx, c.wasm, task.Limits{})
			if err != nil || info.ABI != ABIReactor {
				t.Fatalf("Validate: %v, ABI %q", err, info.ABI)
			}
			h := load(t, s, c.wasm)
			for i := 0; i < 3; i++ {
				res, err := s.Run(ctx, h, "double", []byte("21"), task.Limits{})
				check(t, res, err, outcome{stdout: "42"})
				res, err = s.Run(ctx, h, "double", []byte(" -7\n"), task.Limits{})
				check(t, res, err, outcome{stdout: "-14"})
			}
			res, err := s.Run(ctx, h, "double", []byte("twelve"), task.Limits{})
			check(t, res, err, outcome{kind: task.KindExit, exit: c.exit, stderr: "not an integer"})
		})
	}
}

func TestReactorABI(t *testing.T) {
	s := sharedSandbox(t)
	ctx := context.Background()
	info, err := s.Validate(ctx, samples.DoubleC, task.Limits{})
	if err != nil || info.ABI != ABICommand {
		t.Fatalf("command: %v, ABI %q", err, info.ABI)
	}
	_, err = s.Validate(ctx, samples.Hostile["reactor_both"], task.Limits{})
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "exports both _start and run") {
		t.Fatalf("both: %v", err)
	}
	_, err = s.Validate(ctx, testdata(t, "no_start.wasm"), task.Limits{})
	if err == nil || !strings.Contains(err.Error(), "nor a run function") {
		t.Fatalf("neither: %v", err)
	}
}

// TestReactorIsolation: every task starts from the snapshot, never from the previous task.
func TestReactorIsolation(t *testing.T) {
	ctx := context.Background()
	// Both ways of setting up an instance's memory: copy-on-write and data segments.
	segs, err := newSandbox(ctx, Config{CacheDir: testCacheDir()}, options{noCoW: true})
	if err != nil {
		t.Fatal(err)
	}
	defer segs.Close(ctx)
	for _, c := range []struct {
		name, want string
		wasm       []byte
		limits     task.Limits
	}{
		{"counter", "1 1", samples.ReactorCounter, task.Limits{}},
		{"fill", "0", samples.ReactorFill, task.Limits{}},
		// 17 pages fit in 2 MiB; the growth of a previous task added to them would not.
		{"grow", "17", samples.ReactorGrow, task.Limits{MemoryMB: 2}},
		{"clock", "ok", samples.ReactorClock, task.Limits{}},
		{"gomap", "calls=1 map=0", samples.ReactorGoMap, task.Limits{}},
		// memory grown in _initialize is not a table grown (both draw on the table budget)
		{"table in run", "ok", testdata(t, "reactor_table_in_run.wasm"), task.Limits{}},
		{"passive data", "Ahi", testdata(t, "reactor_passive.wasm"), task.Limits{}},
	} {
		for _, sb := range []struct {
			how string
			s   *Sandbox
		}{{"cow", sharedSandbox(t)}, {"data segments", segs}} {
			t.Run(c.name+"/"+sb.how, func(t *testing.T) {
				h := load(t, sb.s, c.wasm)
				// More tasks than an image keeps memories for (cow_linux.go): later tasks
				// start in memory an earlier one used, put back as the snapshot left it.
				for i := 0; i < 12; i++ {
					res, err := sb.s.Run(ctx, h, c.name, []byte("x"), c.limits)
					check(t, res, err, outcome{stdout: c.want})
				}
			})
		}
	}
}

// TestReactorHostileInit: a misbehaving _initialize fails the task that pre-initializes it
// with its kind, again at the next task (nothing half-made is kept), and harms nothing else.
func TestReactorHostileInit(t *testing.T) {
	s := sharedSandbox(t)
	ctx := context.Background()
	canary := load(t, s, samples.DoubleCReactor)
	for _, name := range []string{"reactor_init_loop", "reactor_init_trap", "reactor_init_oom", "reactor_init_output", "reactor_init_table"} {
		t.Run(name, func(t *testing.T) {
			h := load(t, s, samples.Hostile[name])
			timeout := int64(10_000) // under -race on a busy machine, 16 MiB takes a while
			if samples.HostileKind[name] == task.KindTimeout {
				timeout = 300
			}
			for i := 0; i < 2; i++ {
				res, err := s.Run(ctx, h, name, nil, task.Limits{TimeoutMs: timeout, MemoryMB: 16})
				if err != nil || res.Failure == nil || res.Failure.Kind != samples.HostileKind[name] {
					t.Fatalf("Run: %v, %+v; want kind %s", err, res.Failure, samples.HostileKind[name])
				}
				if !strings.Contains(res.Failure.Message, "_initialize") {
					t.Errorf("message %q does not name _initialize", res.Failure.Message)
				}
			}
			res, err := s.Run(ctx, canary, "double", []byte("21"), task.Limits{})
			check(t, res, err, outcome{stdout: "42"})
		})
	}
}

// TestReactorConcurrentFirstTasks: tasks arriving together at a reactor not yet
// pre-initialized wait for one pre-initialization, each its own caller's patience.
func TestReactorConcurrentFirstTasks(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	h := load(t, s, samples.ReactorCounter)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Run(ctx, h, "c", nil, task.Limits{})
			check(t, res, err, outcome{stdout: "1 1"})
		}()
	}
	wg.Wait()

	loop := load(t, s, samples.Hostile["reactor_init_loop"])
	first := make(chan Result, 1)
	go func() {
		res, _ := s.Run(ctx, loop, "l", nil, task.Limits{TimeoutMs: 2000})
		first <- res
	}()
	time.Sleep(100 * time.Millisecond) // the first task is in _initialize
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.Run(cctx, loop, "l", nil, task.Limits{TimeoutMs: 2000}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a waiting task whose caller gave up: %v, want its context's error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the waiting task returned after %v; its caller gave up after 200 ms", d)
	}
	if res := <-first; res.Failure == nil || res.Failure.Kind != task.KindTimeout {
		t.Fatalf("the pre-initializing task: %+v, want timeout", res.Failure)
	}
}

// TestReactorSnapshotWeighs: a snapshot counts in the compiled-module cache's byte bound, its
// code as much as the module's and its memory image in full.
func TestReactorSnapshotWeighs(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	h := load(t, s, samples.ReactorCounter)
	s.mu.Lock()
	before, module := s.bytes, s.entries[h].bytes
	s.mu.Unlock()
	res, err := s.Run(ctx, h, "c", nil, task.Limits{})
	check(t, res, err, outcome{stdout: "1 1"})
	s.mu.Lock()
	after := s.bytes
	s.mu.Unlock()
	if want := before + module + 1<<16; after != want { // one page of memory
		t.Fatalf("cache bytes %d after the snapshot, want %d (%d before, module %d)", after, want, before, module)
	}
}

// TestReactorExit: proc_exit in run is as for a command; in _initialize, even with code 0,
// it fails the pre-initialization (kind exit).
func TestReactorExit(t *testing.T) {
	s := sharedSandbox(t)
	ctx := context.Background()
	h := load(t, s, testdata(t, "reactor_exit.wasm"))
	res, err := s.Run(ctx, h, "e", []byte("0"), task.Limits{})
	check(t, res, err, outcome{stdout: "bye"})
	res, err = s.Run(ctx, h, "e", []byte("3"), task.Limits{})
	check(t, res, err, outcome{kind: task.KindExit, exit: 3, stdout: "bye"})

	h = load(t, s, testdata(t, "reactor_init_exit.wasm"))
	res, err = s.Run(ctx, h, "e", nil, task.Limits{})
	if err != nil || res.Failure == nil || res.Failure.Kind != task.KindExit || !strings.Contains(res.Failure.Message, "proc_exit(0)") {
		t.Fatalf("Run: %v, %+v; want kind exit naming proc_exit(0)", err, res.Failure)
	}
}
