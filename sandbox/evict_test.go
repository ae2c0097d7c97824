package sandbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"faas/samples"
	"faas/task"
)

// Evict forgets a module in memory and on disk; a module still in use elsewhere stays; the
// same bytes load and run again afterwards (compiled again by a child).
func TestEvictForgetsEverywhere(t *testing.T) {
	dir := t.TempDir()
	s := isolated(t, Isolation{}, Config{CacheDir: dir})
	ctx := t.Context()
	hash, other := Hash(samples.DoubleC), Hash(samples.DoubleWAT)
	for _, wasm := range [][]byte{samples.DoubleC, samples.DoubleWAT} {
		if _, err := s.Load(ctx, wasm); err != nil {
			t.Fatal(err)
		}
	}
	if !s.Loaded(hash) || !s.OnDisk(hash) {
		t.Fatalf("after Load: loaded %v, on disk %v; want both", s.Loaded(hash), s.OnDisk(hash))
	}
	if err := s.Evict(ctx, hash); err != nil {
		t.Fatal(err)
	}
	if s.Loaded(hash) || s.OnDisk(hash) {
		t.Fatalf("after Evict: loaded %v, on disk %v; want neither", s.Loaded(hash), s.OnDisk(hash))
	}
	if files := cacheFiles(t, dir); len(files) != 1 {
		t.Fatalf("cache files after evicting one of two modules: %v, want 1", files)
	}
	if !s.Loaded(other) || !s.OnDisk(other) {
		t.Fatal("the other module was evicted too")
	}
	if _, err := s.Run(ctx, hash, "double", []byte("21"), task.Limits{}); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Run of an evicted module: %v, want ErrNotLoaded", err)
	}
	if err := s.Evict(ctx, hash); err != nil {
		t.Fatalf("evicting an unknown module: %v, want no error", err)
	}
	if _, err := s.Load(ctx, samples.DoubleC); err != nil {
		t.Fatalf("loading again after eviction: %v", err)
	}
	if !s.OnDisk(hash) {
		t.Fatal("reloaded module not on disk: its child did not run again")
	}
	res, err := s.Run(ctx, hash, "double", []byte("21"), task.Limits{})
	if err != nil || res.Failure != nil || string(res.Stdout) != "42" {
		t.Fatalf("Run after reloading: %q %v %v", res.Stdout, res.Failure, err)
	}
}

// A task of an evicted module that is already running finishes.
func TestEvictLetsRunningTaskFinish(t *testing.T) {
	s := isolated(t, Isolation{}, Config{})
	ctx := t.Context()
	hash, err := s.Load(ctx, samples.Sleep)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		res, err := s.Run(ctx, hash, "sleep", []byte("300"), task.Limits{TimeoutMs: 5000})
		if err == nil && res.Failure != nil {
			err = res.Failure
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // it runs now
	if err := s.Evict(ctx, hash); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a task running while its module was evicted: %v", err)
	}
}

func TestEvictRefusesNonHashes(t *testing.T) {
	s, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	for _, h := range []string{"", "../../etc/passwd", "AB" + Hash(nil)[2:], Hash(nil) + "0"} {
		if err := s.Evict(t.Context(), h); !errors.Is(err, ErrNotHash) {
			t.Errorf("Evict(%q) = %v, want ErrNotHash", h, err)
		}
	}
}
