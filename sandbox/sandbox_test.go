package sandbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"faas/samples"
	"faas/task"
)

// The tests share one Sandbox so that each module (the Go one takes seconds to compile under
// -race) is compiled once; its on-disk cache lives in the system temp dir across runs.
var (
	shared     *Sandbox
	sharedOnce sync.Once
	sharedErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		_ = shared.Close(context.Background())
	}
	os.Exit(code)
}

func testCacheDir() string { return filepath.Join(os.TempDir(), "faas-sandbox-test-cache") }

func sharedSandbox(tb testing.TB) *Sandbox {
	tb.Helper()
	sharedOnce.Do(func() {
		shared, sharedErr = New(context.Background(), Config{CacheDir: testCacheDir()})
	})
	if sharedErr != nil {
		tb.Fatal(sharedErr)
	}
	return shared
}

func load(tb testing.TB, s *Sandbox, wasm []byte) string {
	tb.Helper()
	h, err := s.Load(context.Background(), wasm)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return h
}

func testdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// outcome is what a test expects of a run: stdout, or a failure kind (and exit code).
type outcome struct {
	stdout string
	kind   task.Kind // "" = success
	exit   uint32    // for KindExit
	stderr string    // substring of stderr, when set
}

func check(tb testing.TB, res Result, err error, want outcome) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("Run error: %v", err)
	}
	switch {
	case want.kind == "" && res.Failure != nil:
		tb.Fatalf("failed %v (stderr %q), want success with %q", res.Failure, res.Stderr, want.stdout)
	case want.kind != "" && res.Failure == nil:
		tb.Fatalf("succeeded with %q, want %s", trunc(res.Stdout), want.kind)
	case want.kind != "" && res.Failure.Kind != want.kind:
		tb.Fatalf("failed %v, want kind %s", res.Failure, want.kind)
	}
	if want.kind == "" || want.kind == task.KindExit {
		if string(res.Stdout) != want.stdout {
			tb.Errorf("stdout %q, want %q", trunc(res.Stdout), want.stdout)
		}
	}
	if want.kind == task.KindExit && res.ExitCode != want.exit {
		tb.Errorf("exit code %d, want %d", res.ExitCode, want.exit)
	}
	if want.stderr != "" && !strings.Contains(string(res.Stderr), want.stderr) {
		tb.Errorf("stderr %q, want it to contain %q", res.Stderr, want.stderr)
	}
}

func trunc(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%s... (%d bytes)", b[:64], len(b))
	}
	return string(b)
}

func TestSamples(t *testing.T) {
	s := sharedSandbox(t)
	type tc struct {
		sample string
		input  string
		want   outcome
	}
	var cases []tc
	for _, lang := range []string{"wat", "c", "go", "as"} {
		name := "double_" + lang
		cases = append(cases,
			tc{name, "21", outcome{stdout: "42"}},
			tc{name, " -7\n", outcome{stdout: "-14"}},
			tc{name, "4611686018427387903", outcome{stdout: "9223372036854775806"}},
			tc{name, "twelve", outcome{kind: task.KindExit, exit: 2, stderr: "not an integer"}},
			tc{name, "", outcome{kind: task.KindExit, exit: 2, stderr: "not an integer"}},
		)
	}
	binary := string([]byte{0, 1, 2, 255, '\n', 0})
	cases = append(cases,
		tc{"noop", "ignored", outcome{}},
		tc{"echo", "hello, world", outcome{stdout: "hello, world"}},
		tc{"echo", binary, outcome{stdout: binary}},
		tc{"echo", "", outcome{}},
		tc{"echo", strings.Repeat("0123456789", 20000), outcome{stdout: strings.Repeat("0123456789", 20000)}},
		tc{"wordcount", "the quick brown fox\njumps over\n\nthe lazy dog\n", outcome{stdout: `{"lines":4,"words":9,"bytes":45}`}},
		tc{"wordcount", "", outcome{stdout: `{"lines":0,"words":0,"bytes":0}`}},
		tc{"fib", "20", outcome{stdout: "6765"}},
		tc{"fib", "90", outcome{kind: task.KindTimeout}}, // naive recursion: far past 1 s
		tc{"fib", "x", outcome{kind: task.KindExit, exit: 2}},
		tc{"sleep", "30", outcome{stdout: "slept 30 ms"}},
	)
	for _, c := range cases {
		t.Run(c.sample+"/"+strings.ReplaceAll(fmt.Sprintf("%.12q", c.input), "/", "_"), func(t *testing.T) {
			h := load(t, s, samples.Get(c.sample))
			res, err := s.Run(context.Background(), h, c.sample, []byte(c.input), task.Limits{TimeoutMs: 1000})
			check(t, res, err, c.want)
		})
	}
}

func TestSleepIsReal(t *testing.T) {
	s := sharedSandbox(t)
	h := load(t, s, samples.Sleep)
	start := time.Now()
	res, err := s.Run(context.Background(), h, "sleep", []byte("120"), task.Limits{})
	check(t, res, err, outcome{stdout: "slept 120 ms"})
	if d := time.Since(start); d < 120*time.Millisecond {
		t.Errorf("slept %v, want at least 120ms", d)
	}
}

func TestSleepEndsAtDeadline(t *testing.T) {
	s := sharedSandbox(t)
	h := load(t, s, samples.Sleep)
	start := time.Now()
	res, err := s.Run(context.Background(), h, "sleep", []byte("60000"), task.Limits{TimeoutMs: 150})
	check(t, res, err, outcome{kind: task.KindTimeout})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a 60 s sleep under a 150 ms deadline took %v", d)
	}
}

// A sleep cut short by the caller (shutdown), not by the deadline, must not let the guest
// carry on and be recorded as a success: "slept 60000 ms" after 50 ms is a wrong result. The
// run ends with the caller's error, so the task is handed back and runs again.
func TestSleepInterruptedByCaller(t *testing.T) {
	s := sharedSandbox(t)
	h := load(t, s, samples.Sleep)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	res, err := s.Run(ctx, h, "sleep", []byte("60000"), task.Limits{TimeoutMs: 120_000})
	if !errors.Is(err, context.Canceled) || res.Failure != nil {
		t.Errorf("sleep interrupted by the caller: err %v, failure %v, stdout %q; want context.Canceled and no failure",
			err, res.Failure, res.Stdout)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a cancelled 60 s sleep took %v", d)
	}
}

func TestHostile(t *testing.T) {
	s := sharedSandbox(t)
	for name, wasm := range samples.Hostile {
		t.Run(name, func(t *testing.T) {
			kind := task.Kind(samples.HostileKind[name])
			if kind == "" {
				_, err := s.Validate(context.Background(), wasm, task.Limits{})
				var ve *ValidationError
				if !errors.Is(err, ErrInvalidModule) || !errors.As(err, &ve) {
					t.Fatalf("Validate: %v, want a *ValidationError", err)
				}
				if _, err := s.Load(context.Background(), wasm); !errors.Is(err, ErrInvalidModule) {
					t.Fatalf("Load: %v, want ErrInvalidModule", err)
				}
				return
			}
			if _, err := s.Validate(context.Background(), wasm, task.Limits{}); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			want := outcome{kind: kind}
			switch name {
			case "exit_nonzero":
				want.exit, want.stdout = 3, "bye"
			case "open_file":
				want.exit, want.stderr = 1, "denied"
			case "read_env":
				want.exit, want.stderr = 1, "no environment"
			}
			timeout := int64(300)
			if kind != task.KindTimeout {
				timeout = 10_000 // a stack overflow takes ~0.3 s to reach
			}
			start := time.Now()
			res, err := s.Run(context.Background(), load(t, s, wasm), name, nil, task.Limits{TimeoutMs: timeout})
			check(t, res, err, want)
			if d := time.Since(start); d > time.Duration(timeout)*time.Millisecond+2*time.Second {
				t.Errorf("took %v under a %d ms deadline", d, timeout)
			}
			if kind == task.KindOutputTooLarge && int64(len(res.Stdout)) != task.DefaultLimits().StdoutBytes {
				t.Errorf("kept %d bytes of stdout, want the limit %d", len(res.Stdout), task.DefaultLimits().StdoutBytes)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	s := sharedSandbox(t)
	ctx := context.Background()
	t.Run("memory is per task", func(t *testing.T) {
		h := load(t, s, testdata(t, "max_memory.wasm")) // grows 2 MiB, exits 1 if refused
		res, err := s.Run(ctx, h, "m", nil, task.Limits{MemoryMB: 2})
		check(t, res, err, outcome{kind: task.KindOutOfMemory}) // refused, then exit 1: still out_of_memory
		res, err = s.Run(ctx, h, "m", nil, task.Limits{MemoryMB: 3})
		check(t, res, err, outcome{})
	})
	t.Run("memory bomb under a small limit", func(t *testing.T) {
		res, err := s.Run(ctx, load(t, s, samples.Hostile["memory_bomb"]), "b", nil, task.Limits{MemoryMB: 1})
		check(t, res, err, outcome{kind: task.KindOutOfMemory})
	})
	t.Run("stdout limit", func(t *testing.T) {
		h := load(t, s, samples.Echo)
		res, err := s.Run(ctx, h, "e", []byte("0123456789"), task.Limits{StdoutBytes: 10})
		check(t, res, err, outcome{stdout: "0123456789"})
		res, err = s.Run(ctx, h, "e", []byte("0123456789!"), task.Limits{StdoutBytes: 10})
		check(t, res, err, outcome{kind: task.KindOutputTooLarge})
	})
	t.Run("stdin limit", func(t *testing.T) {
		res, err := s.Run(ctx, load(t, s, samples.Echo), "e", []byte("too long"), task.Limits{StdinBytes: 3})
		check(t, res, err, outcome{kind: task.KindInternal})
	})
	t.Run("initial memory above the limit", func(t *testing.T) {
		h := load(t, s, testdata(t, "big_memory.wasm")) // Load does not check memory; Run does
		res, err := s.Run(ctx, h, "big", nil, task.Limits{})
		check(t, res, err, outcome{kind: task.KindOutOfMemory})
	})
	t.Run("stderr tail", func(t *testing.T) {
		small, err := New(ctx, Config{StderrBytes: 8})
		if err != nil {
			t.Fatal(err)
		}
		defer small.Close(ctx)
		res, err := small.Run(ctx, load(t, small, samples.DoubleC), "d", []byte("x"), task.Limits{})
		check(t, res, err, outcome{kind: task.KindExit, exit: 2})
		if string(res.Stderr) != "integer\n" {
			t.Errorf("stderr tail %q, want %q", res.Stderr, "integer\n")
		}
	})
}

func TestHostFacilities(t *testing.T) {
	s := sharedSandbox(t)
	h := load(t, s, testdata(t, "sys.wasm"))
	before := time.Now()
	res, err := s.Run(context.Background(), h, "my-function", nil, task.Limits{})
	check(t, res, err, outcome{stdout: string(res.Stdout)})
	out := res.Stdout
	if len(out) < 36 {
		t.Fatalf("short output %x", out)
	}
	wall := time.Unix(0, int64(binary.LittleEndian.Uint64(out[0:])))
	if d := wall.Sub(before); d < -time.Second || d > 10*time.Second {
		t.Errorf("wall clock %v, host says %v: not the real time", wall, before)
	}
	if mono := binary.LittleEndian.Uint64(out[8:]); mono == 0 {
		t.Error("monotonic clock is 0")
	}
	if n := binary.LittleEndian.Uint32(out[16:]); n != 0 {
		t.Errorf("%d environment variables, want none", n)
	}
	if bytes.Equal(out[20:36], make([]byte, 16)) {
		t.Error("random bytes are all zero")
	}
	res2, _ := s.Run(context.Background(), h, "my-function", nil, task.Limits{})
	if bytes.Equal(out[20:36], res2.Stdout[20:36]) {
		t.Error("random bytes repeat between runs: not cryptographic")
	}
	if argv := string(out[36:]); argv != "my-function" {
		t.Errorf("argv[0] %q, want the function's name", argv)
	}
}

func TestFreshInstancePerTask(t *testing.T) {
	s := sharedSandbox(t)
	h := load(t, s, testdata(t, "fresh.wasm"))
	for i := 0; i < 3; i++ {
		res, err := s.Run(context.Background(), h, "fresh", nil, task.Limits{})
		check(t, res, err, outcome{stdout: "aa"})
	}
}

func TestValidate(t *testing.T) {
	s := sharedSandbox(t)
	ctx := context.Background()
	noop := samples.Noop
	for _, c := range []struct {
		name   string
		wasm   []byte
		limits task.Limits
		reason string // substring of the refusal; "" = accepted
	}{
		{"noop", noop, task.Limits{}, ""},
		{"double_c", samples.DoubleC, task.Limits{}, ""},
		{"double_as", samples.DoubleAS, task.Limits{}, ""},
		{"grows past the limit but starts under it", testdata(t, "max_memory.wasm"), task.Limits{MemoryMB: 1}, ""},
		{"empty", nil, task.Limits{}, "not a WebAssembly binary"},
		{"text", []byte("(module)"), task.Limits{}, "not a WebAssembly binary"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), task.Limits{}, "only core modules"},
		{"truncated", noop[:len(noop)-3], task.Limits{}, "not a valid WebAssembly module"},
		{"bad import", samples.Hostile["bad_import"], task.Limits{}, "imports env.system, which is not WASI preview1"},
		{"unknown WASI function", testdata(t, "unknown_wasi.wasm"), task.Limits{}, "sock_connect, which WASI preview1 does not provide"},
		{"wrong WASI signature", testdata(t, "bad_signature.wasm"), task.Limits{}, "fd_write with type (i32) -> (i32)"},
		{"imported memory", testdata(t, "import_memory.wasm"), task.Limits{}, "as a memory"},
		{"no _start", testdata(t, "no_start.wasm"), task.Limits{}, "does not export a _start function"},
		{"_start with params", testdata(t, "start_params.wasm"), task.Limits{}, "exports _start with type (i32) -> ()"},
		{"memory above default", testdata(t, "big_memory.wasm"), task.Limits{}, "declares 40000 pages (2500 MiB) of initial memory, limit is 1024 pages"},
		{"does not compile", []byte("\x00asm\x01\x00\x00\x00" +
			"\x01\x04\x01\x60\x00\x00" + // type () -> ()
			"\x03\x02\x01\x00" + // one function of that type
			"\x07\x0a\x01\x06_start\x00\x00" + // exported as _start
			"\x0a\x05\x01\x03\x00\x6a\x0b"), task.Limits{}, "does not compile"},
	} {
		t.Run(c.name, func(t *testing.T) {
			info, err := s.Validate(ctx, c.wasm, c.limits)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if info.Hash != Hash(c.wasm) || info.Size != int64(len(c.wasm)) || !s.Loaded(info.Hash) {
					t.Errorf("info %+v: wrong hash or size, or not loaded", info)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("err %v, want a *ValidationError matching ErrInvalidModule", err)
			}
			if !strings.Contains(ve.Reason, c.reason) {
				t.Errorf("reason %q, want it to contain %q", ve.Reason, c.reason)
			}
		})
	}
	info, err := s.Validate(ctx, samples.DoubleWAT, task.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"wasi_snapshot_preview1.fd_read", "wasi_snapshot_preview1.fd_write", "wasi_snapshot_preview1.proc_exit"}
	if fmt.Sprint(info.Imports) != fmt.Sprint(want) || info.MemoryMinPages != 1 || info.HasMemoryMax || info.Functions != 3 {
		t.Errorf("info %+v", info)
	}
}

func TestInstrumentation(t *testing.T) {
	for _, name := range []string{"noop", "double_c", "double_go", "call_tree", "spin", "sort"} {
		wasm := samples.Get(name)
		f, out, err := parseWasm(wasm, true)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Every function entry holds the check and every loop header the loop check, which
		// compares its local with loopBatch (more may match by chance).
		if n := bytes.Count(out, f.check); f.funcs == 0 || n < f.funcs-f.entryInP {
			t.Errorf("%s: %d checks for %d functions (%d counting their entry in P)", name, n, f.funcs, f.entryInP)
		}
		if n := bytes.Count(out, []byte{0x42, 0x80, 0x08, 0x5a, 0x04, 0x40}); n < f.loops {
			t.Errorf("%s: %d loop checks for %d loops", name, n, f.loops)
		}
		// The instrumented module exports the counter: given back, it is refused.
		if g, _, err := parseWasm(out, true); err != nil || !g.reserved || g.funcs != f.funcs {
			t.Errorf("%s: instrumented again: %v, reserved %v", name, err, g != nil && g.reserved)
		}
	}
	// noop's one body is `0 locals, end`: instrumented it is `0 locals, check, end`.
	f, out, _ := parseWasm(samples.Noop, true)
	body := append(append([]byte{0x00}, f.check...), 0x0b)
	if !bytes.Contains(out, append([]byte{byte(len(body))}, body...)) {
		t.Errorf("noop instrumented: %x", out)
	}
}

func TestRunErrors(t *testing.T) {
	s := sharedSandbox(t)
	if _, err := s.Run(context.Background(), Hash([]byte("nothing")), "x", nil, task.Limits{}); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("unknown hash: %v, want ErrNotLoaded", err)
	}
	// The caller's context (not the task deadline) ends a run with its error, not a Failure.
	h := load(t, s, samples.Hostile["infinite_loop"])
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	res, err := s.Run(ctx, h, "loop", nil, task.Limits{TimeoutMs: 60_000})
	if !errors.Is(err, context.Canceled) || res.Failure != nil {
		t.Errorf("cancelled run: %v, %v; want context.Canceled and no failure", err, res.Failure)
	}
	if _, err := s.Run(ctx, h, "loop", nil, task.Limits{}); !errors.Is(err, context.Canceled) {
		t.Errorf("run on a cancelled context: %v", err)
	}
}

func TestCacheEviction(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Config{MaxCompiled: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	a, b, c := load(t, s, samples.Noop), load(t, s, samples.DoubleWAT), load(t, s, samples.Echo)
	if s.Loaded(a) || !s.Loaded(b) || !s.Loaded(c) {
		t.Fatalf("loaded: %v %v %v; want the oldest evicted", s.Loaded(a), s.Loaded(b), s.Loaded(c))
	}
	if _, err := s.Run(ctx, a, "noop", nil, task.Limits{}); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("evicted: %v", err)
	}
	// A run holds its module: evicting it meanwhile does not break the run.
	loop := load(t, s, samples.Hostile["infinite_loop"])
	done := make(chan Result)
	go func() {
		res, _ := s.Run(ctx, loop, "loop", nil, task.Limits{TimeoutMs: 300})
		done <- res
	}()
	time.Sleep(50 * time.Millisecond)
	load(t, s, samples.Noop)
	load(t, s, samples.Echo)
	if res := <-done; res.Failure == nil || res.Failure.Kind != task.KindTimeout {
		t.Errorf("run during eviction: %+v", res)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, samples.Noop); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close: %v", err)
	}
}

// TestConcurrent runs 50 tasks at once, good and hostile mixed, on one fresh Sandbox, and
// checks each outcome and that no goroutine outlives them.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	s, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	type job struct {
		wasm  []byte
		input string
		want  outcome
	}
	// Guest code is not preemptible by the Go scheduler: the 12 spinning jobs hold both cores
	// of a small machine until their 300 ms deadline, so every other job gets a generous one.
	spin := map[task.Kind]bool{task.KindTimeout: true}
	jobs := []job{
		{samples.DoubleWAT, "5", outcome{stdout: "10"}},
		{samples.DoubleC, "6", outcome{stdout: "12"}},
		{samples.DoubleAS, "7", outcome{stdout: "14"}},
		{samples.Echo, "hi", outcome{stdout: "hi"}},
		{samples.Fib, "15", outcome{stdout: "610"}},
		{samples.Sleep, "20", outcome{stdout: "slept 20 ms"}},
		{samples.Noop, "", outcome{}},
		{samples.Hostile["infinite_loop"], "", outcome{kind: task.KindTimeout}},
		{samples.Hostile["call_tree"], "", outcome{kind: task.KindTimeout}},
		{samples.Hostile["memory_bomb"], "", outcome{kind: task.KindOutOfMemory}},
		{samples.Hostile["unreachable"], "", outcome{kind: task.KindTrap}},
		{samples.Hostile["huge_output"], "", outcome{kind: task.KindOutputTooLarge}},
		{samples.Hostile["exit_nonzero"], "", outcome{kind: task.KindExit, exit: 3, stdout: "bye"}},
	}
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for i := 0; i < 50; i++ {
		j := jobs[i%len(jobs)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := s.Load(ctx, j.wasm)
			if err != nil {
				errs <- err.Error()
				return
			}
			timeout := int64(20_000)
			if spin[j.want.kind] {
				timeout = 300
			}
			res, err := s.Run(ctx, h, "c", []byte(j.input), task.Limits{TimeoutMs: timeout, StdoutBytes: 1 << 20})
			rec := &recorder{}
			check(rec, res, err, j.want)
			if rec.failed {
				errs <- fmt.Sprintf("job %d: %s", i, rec.msg)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, before)
}

// recorder is a testing.TB for checks made off the test goroutine.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed, r.msg = true, r.msg+fmt.Sprintf(format, args...)+"; "
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

// checkNoLeak waits up to 5 s for the goroutine count to come back to before.
func checkNoLeak(tb testing.TB, before int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			tb.Fatalf("%d goroutines left behind (before: %d):\n%s", runtime.NumGoroutine()-before, before, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
