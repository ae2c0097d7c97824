package sandbox

import (
	"context"
	"os"
	"testing"

	"faas/samples"
	"faas/task"
)

// BenchmarkRegister is the registration path's compile (Validate of a module never seen,
// with an empty on-disk cache each time): in-process as before isolation, through a child
// process, and the parent's own compile once the child has filled the cache ("warm": what
// isolation adds on top of the child). docs/BENCHMARKS.md has the figures.
func BenchmarkRegister(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		wasm []byte
	}{{"wat", samples.DoubleWAT}, {"c", samples.DoubleC}, {"go", samples.DoubleGo}} {
		b.Run(c.name+"/in-process", func(b *testing.B) { benchRegister(b, c.wasm, nil, false) })
		b.Run(c.name+"/isolated", func(b *testing.B) { benchRegister(b, c.wasm, &Isolation{Binary: exe}, false) })
		b.Run(c.name+"/warm", func(b *testing.B) { benchRegister(b, c.wasm, nil, true) })
	}
}

func benchRegister(b *testing.B, wasm []byte, iso *Isolation, warm bool) {
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		if warm { // another Sandbox fills the cache
			s, err := New(ctx, Config{CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Validate(ctx, wasm, task.Limits{}); err != nil {
				b.Fatal(err)
			}
			_ = s.Close(ctx)
		}
		s, err := New(ctx, Config{CacheDir: dir, Isolate: iso})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Validate(ctx, wasm, task.Limits{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = s.Close(ctx)
		b.StartTimer()
	}
}
