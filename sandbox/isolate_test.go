package sandbox

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"faas/internal/testutil"
	"faas/samples"
	"faas/task"
)

// init plays the compiling child when this test binary is run as one (the Sandboxes of these
// tests use it as Isolation.Binary), before the testing package sees the arguments. Its
// flags are the ones the parent passes; cmd_compile.go in internal/cli does the same for
// the faas binary.
func init() {
	if len(os.Args) < 2 || os.Args[1] != ChildCommand {
		return
	}
	fs := flag.NewFlagSet(ChildCommand, flag.ExitOnError)
	dir := fs.String("cache-dir", "", "")
	mem := fs.Int64("compile-memory", 0, "")
	timeout := fs.Duration("compile-timeout", 0, "")
	_ = fs.Parse(os.Args[2:])
	if err := SetChildLimits(ChildLimits{Memory: *mem, Timeout: *timeout}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := RunChild(context.Background(), os.Stdin, *dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, ErrInvalidModule) {
			os.Exit(ChildExitRefused)
		}
		os.Exit(1)
	}
	os.Exit(0)
}

func isolated(tb testing.TB, iso Isolation, cfg Config) *Sandbox {
	tb.Helper()
	if iso.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			tb.Fatal(err)
		}
		iso.Binary = exe
	}
	cfg.Isolate = &iso
	s, err := New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// cacheFiles lists the compiled modules in a cache directory.
func cacheFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.Contains(p, "wazero-") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// The child's compilation reaches the parent through the cache: had the parent missed and
// compiled the module itself, wazero would have written a second file under another key.
func TestIsolatedLoadUsesChildsCache(t *testing.T) {
	dir := t.TempDir()
	s := isolated(t, Isolation{}, Config{CacheDir: dir})
	for _, wasm := range [][]byte{samples.DoubleC, samples.DoubleWAT} {
		if _, err := s.Load(t.Context(), wasm); err != nil {
			t.Fatal(err)
		}
	}
	if files := cacheFiles(t, dir); len(files) != 2 {
		t.Fatalf("cache files after loading 2 modules: %v, want 2 (one per child, none by the parent)", files)
	}
	res, err := s.Run(t.Context(), Hash(samples.DoubleC), "double", []byte("21"), task.Limits{})
	if err != nil || res.Failure != nil || string(res.Stdout) != "42" {
		t.Fatalf("Run after isolated load: %q %v %v", res.Stdout, res.Failure, err)
	}
	// A new process with the same cache compiles nothing again: no child, no new file.
	s2 := isolated(t, Isolation{}, Config{CacheDir: dir})
	s2.iso.cfg.Binary = "/nonexistent" // a child would fail: the index must be enough
	if _, err := s2.Load(t.Context(), samples.DoubleC); err != nil {
		t.Fatalf("reloading from the cache: %v", err)
	}
	if files := cacheFiles(t, dir); len(files) != 2 {
		t.Fatalf("cache files after a reload: %v, want still 2", files)
	}
}

func TestIsolatedRefusalsNameTheLimit(t *testing.T) {
	if raceBuild {
		t.Skip("RLIMIT_AS does not bound a race-enabled child (e2e's TestAttackCompileMemory runs an unraced binary)")
	}
	s := isolated(t, Isolation{Memory: 256 << 20}, Config{})
	wide := testutil.WideCompile(2_000_000) // ~400 MB to compile
	_, err := s.Load(t.Context(), wide)
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "--compile-memory") {
		t.Fatalf("a wide module under 256 MiB: want a ValidationError naming --compile-memory, got %v", err)
	}
	if s.Loaded(Hash(wide)) {
		t.Fatal("a refused module is loaded")
	}
	if _, err := s.Load(t.Context(), samples.DoubleWAT); err != nil {
		t.Fatalf("a small module after a refusal: %v", err)
	}
	s = isolated(t, Isolation{Timeout: time.Second}, Config{})
	_, err = s.Load(t.Context(), testutil.SlowCompile(6, 0)) // ~2 s to compile
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "--compile-timeout") {
		t.Fatalf("a slow module under 1 s: want a refusal naming --compile-timeout, got %v", err)
	}
}

// A caller that leaves stops its child: the answer is its context's error, not a refusal.
func TestIsolatedLoadCancelled(t *testing.T) {
	s := isolated(t, Isolation{Concurrency: 1}, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := s.Load(ctx, samples.DoubleGo)
	if err == nil {
		t.Skip("double_go compiled within 300 ms: nothing to cancel on this machine")
	}
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrInvalidModule) {
		t.Fatalf("cancelled load: want the context's error, got %v", err)
	}
	if _, err := s.Load(t.Context(), samples.DoubleWAT); err != nil {
		t.Fatalf("the semaphore was not released: %v", err)
	}
}

func TestCompiledBytesBound(t *testing.T) {
	s, err := New(t.Context(), Config{MaxCompiledBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	a, b := load(t, s, samples.DoubleWAT), load(t, s, samples.DoubleC)
	if s.Loaded(a) || !s.Loaded(b) {
		t.Fatalf("over the byte bound the older module must go and the newest stay: %v %v", s.Loaded(a), s.Loaded(b))
	}
}

func TestDiskCacheTrim(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "wazero-test")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	write := func(name string, size int, age time.Duration) {
		p := filepath.Join(sub, name)
		if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	write("old", 1000, 3*time.Hour)
	write("mid", 1000, 2*time.Hour)
	write("new", 1000, time.Hour)
	write("fresh", 1000, 0)                   // in use right now: never evicted
	write("stale.123.tmp", 10, 2*staleTemp)   // a writer that died
	write("writing.456.tmp", 10, time.Minute) // a write in progress
	idx := filepath.Join(dir, indexDir)
	if err := os.MkdirAll(idx, 0o700); err != nil {
		t.Fatal(err)
	}
	for key, rel := range map[string]string{"gone": "wazero-test/evicted-long-ago", "kept": "wazero-test/fresh"} {
		if err := os.WriteFile(filepath.Join(idx, key), []byte(rel), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kept := (&diskCache{dir: dir, max: 2500, log: slog.Default()}).trim()
	var left []string
	for _, f := range cacheFiles(t, dir) {
		left = append(left, filepath.Base(f))
	}
	if got := strings.Join(left, ","); got != "fresh,new,writing.456.tmp" || kept != 2000 {
		t.Fatalf("after trimming to 2500 bytes: %s (%d bytes), want fresh,new,writing.456.tmp (2000)", got, kept)
	}
	if _, err := os.Stat(filepath.Join(idx, "gone")); !os.IsNotExist(err) {
		t.Errorf("the index entry of an evicted file is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(idx, "kept")); err != nil {
		t.Errorf("the index entry of a kept file: %v", err)
	}
}
