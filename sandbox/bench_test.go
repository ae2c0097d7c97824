package sandbox

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"faas/samples"
	"faas/task"
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

// cpuCases are the CPU-bound guests, where a per-check cost shows most: call-heavy (fib), the
// tightest loop (spin), and realistic C (sort). BenchmarkOverhead runs them when not -short.
var cpuCases = []struct {
	name  string
	wasm  []byte
	input string
	want  string
}{
	{"fib25", samples.Fib, "25", "75025"},
	{"spin", samples.Spin, "", ""},
	{"sort100k", samples.Sort, "100000", "sorted 100000 checksum 14334044835415049311"},
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
// sandbox's safety costs the most: the metering check runs at every call.
func BenchmarkFib(b *testing.B) {
	const in, want = "25", "75025"
	b.Run("sandbox", func(b *testing.B) { benchSandbox(b, options{}, samples.Fib, in, want) })
	b.Run("sandbox-no-instrument", func(b *testing.B) {
		benchSandbox(b, options{noInstrument: true}, samples.Fib, in, want)
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
	// One task first, outside the timing: a reactor's first task pre-initializes it.
	if _, err := s.Run(ctx, h, "bench", in, task.Limits{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := s.Run(ctx, h, "bench", in, task.Limits{})
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

// BenchmarkOverhead runs the sandbox and bare wazero alternately within each iteration, so
// that load from other processes hits both alike, and reports each one's time per task and
// their ratio (the figure docs/BENCHMARKS.md records; target ≤ 1.2).
//
// The "-no-instrument" variant turns the metering (and the table.grow checks) off, to show
// what they cost; production never does.
func BenchmarkOverhead(b *testing.B) {
	type variant struct {
		suffix string
		opt    options
	}
	variants := []variant{{"", options{}}}
	if !testing.Short() {
		variants = append(variants, variant{"-no-instrument", options{noInstrument: true}})
	}
	cases := benchCases
	if !testing.Short() {
		cases = append(cases, cpuCases...)
	}
	for _, c := range cases {
		for _, v := range variants {
			b.Run(c.name+v.suffix, func(b *testing.B) {
				ctx := context.Background()
				s, err := newSandbox(ctx, Config{CacheDir: testCacheDir()}, v.opt)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close(ctx)
				h := load(b, s, c.wasm)
				cache, err := wazero.NewCompilationCacheWithDir(testCacheDir())
				if err != nil {
					b.Fatal(err)
				}
				r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
				defer r.Close(ctx)
				wasi_snapshot_preview1.MustInstantiate(ctx, r)
				compiled, err := r.CompileModule(ctx, c.wasm)
				if err != nil {
					b.Fatal(err)
				}
				cfg := wazero.NewModuleConfig().WithName("").WithArgs("bench")
				in := []byte(c.input)
				runS := func() time.Duration {
					t0 := time.Now()
					res, err := s.Run(ctx, h, "bench", in, task.Limits{})
					d := time.Since(t0)
					if err != nil || string(res.Stdout) != c.want {
						b.Fatalf("sandbox: %v %v %q", err, res.Failure, res.Stdout)
					}
					return d
				}
				runW := func() time.Duration {
					t0 := time.Now()
					var out bytes.Buffer
					mod, err := r.InstantiateModule(ctx, compiled, cfg.WithStdin(bytes.NewReader(in)).WithStdout(&out))
					if err == nil {
						mod.Close(ctx)
					}
					d := time.Since(t0)
					if err != nil || out.String() != c.want {
						b.Fatalf("wazero: %v %q", err, out.String())
					}
					return d
				}
				var sb, wz time.Duration
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if i%2 == 0 { // alternate which goes first
						sb += runS()
						wz += runW()
					} else {
						wz += runW()
						sb += runS()
					}
				}
				b.ReportMetric(float64(sb.Nanoseconds())/float64(b.N), "sandbox-ns/task")
				b.ReportMetric(float64(wz.Nanoseconds())/float64(b.N), "wazero-ns/task")
				b.ReportMetric(float64(sb)/float64(wz), "ratio")
			})
		}
	}
}
