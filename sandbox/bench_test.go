package sandbox

import (
	"bytes"
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"faas/samples"
)

// The benchmarks measure the per-task cost (instantiate + run _start + close) of a module
// already compiled, through Sandbox.Run and through bare wazero doing the same with nothing
// of ours around it (default runtime config, WASI, stdin and stdout buffers per call).
// Commands and figures: docs/BENCHMARKS.md.

var benchCases = []struct {
	name  string
	wasm  []byte
	input string
	want  string
}{
	{"noop", samples.Noop, "", ""},
	{"double_c", samples.DoubleC, "21", "42"},
	{"double_go", samples.DoubleGo, "21", "42"},
}

func BenchmarkRun(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name+"/sandbox", func(b *testing.B) {
			benchSandbox(b, options{}, c.wasm, c.input, c.want)
		})
		b.Run(c.name+"/wazero", func(b *testing.B) {
			benchBare(b, wazero.NewRuntimeConfig(), c.wasm, c.input, c.want)
		})
	}
}

// BenchmarkFib is CPU-bound guest code (fib(25) by naive recursion: ~240k calls), where the
// sandbox's safety costs the most: the function-entry check runs at every call.
func BenchmarkFib(b *testing.B) {
	const in, want = "25", "75025"
	b.Run("sandbox", func(b *testing.B) { benchSandbox(b, options{}, samples.Fib, in, want) })
	b.Run("sandbox-no-close-on-done", func(b *testing.B) {
		benchSandbox(b, options{noCloseOnDone: true}, samples.Fib, in, want)
	})
	b.Run("sandbox-no-entry-check", func(b *testing.B) {
		benchSandbox(b, options{noEntryCheck: true}, samples.Fib, in, want)
	})
	b.Run("wazero", func(b *testing.B) { benchBare(b, wazero.NewRuntimeConfig(), samples.Fib, in, want) })
	b.Run("wazero-close-on-done", func(b *testing.B) {
		benchBare(b, wazero.NewRuntimeConfig().WithCloseOnContextDone(true), samples.Fib, in, want)
	})
}

func benchSandbox(b *testing.B, opt options, wasm []byte, input, want string) {
	ctx := context.Background()
	s, err := newSandbox(ctx, Config{CacheDir: testCacheDir()}, opt)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	h := load(b, s, wasm)
	in := []byte(input)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := s.Run(ctx, h, "bench", in, Limits{})
		if err != nil || res.Failure != nil || string(res.Stdout) != want {
			b.Fatalf("%v %v %q", err, res.Failure, res.Stdout)
		}
	}
}

func benchBare(b *testing.B, rc wazero.RuntimeConfig, wasm []byte, input, want string) {
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(testCacheDir())
	if err != nil {
		b.Fatal(err)
	}
	r := wazero.NewRuntimeWithConfig(ctx, rc.WithCompilationCache(cache))
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	compiled, err := r.CompileModule(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	cfg := wazero.NewModuleConfig().WithName("").WithArgs("bench")
	in := []byte(input)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var out bytes.Buffer
		mod, err := r.InstantiateModule(ctx, compiled, cfg.WithStdin(bytes.NewReader(in)).WithStdout(&out))
		if err != nil || out.String() != want {
			b.Fatalf("%v %q", err, out.String())
		}
		mod.Close(ctx)
	}
}
