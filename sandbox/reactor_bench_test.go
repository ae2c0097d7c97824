package sandbox

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"faas/samples"
	"faas/task"
)

// BenchmarkReactor is the per-task cost of double in Go, C and AssemblyScript: as a command (a fresh
// instance runs _start), as a reactor started fresh from its snapshot (Sandbox.Run), and as
// the reactor in bare wazero without a snapshot (a fresh instance calls _initialize then run,
// every task). Figures: docs/BENCHMARKS.md, "Reactors".
func BenchmarkReactor(b *testing.B) {
	for _, c := range []struct {
		lang             string
		command, reactor []byte
	}{{"go", samples.DoubleGo, samples.DoubleGoReactor}, {"c", samples.DoubleC, samples.DoubleCReactor}, {"as", samples.DoubleAS, samples.DoubleASReactor}} {
		b.Run(c.lang+"/command", func(b *testing.B) { benchSandbox(b, options{}, c.command, "21", "42") })
		b.Run(c.lang+"/reactor", func(b *testing.B) { benchSandbox(b, options{}, c.reactor, "21", "42") })
		b.Run(c.lang+"/reactor-data-segments", func(b *testing.B) { benchSandbox(b, options{noCoW: true}, c.reactor, "21", "42") })
		b.Run(c.lang+"/wazero-no-snapshot", func(b *testing.B) { benchBareReactor(b, c.reactor, "21", "42") })
	}
}

func benchBareReactor(b *testing.B, wasm []byte, input, want string) {
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(testCacheDir())
	if err != nil {
		b.Fatal(err)
	}
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	compiled, err := r.CompileModule(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	cfg := wazero.NewModuleConfig().WithName("").WithArgs("bench").WithStartFunctions().WithSysNanotime().WithSysWalltime()
	in := []byte(input)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var out bytes.Buffer
		mod, err := r.InstantiateModule(ctx, compiled, cfg.WithStdin(bytes.NewReader(in)).WithStdout(&out))
		if err == nil {
			if _, err = mod.ExportedFunction("_initialize").Call(ctx); err == nil {
				_, err = mod.ExportedFunction("run").Call(ctx)
			}
		}
		if err != nil || out.String() != want {
			b.Fatalf("%v %q", err, out.String())
		}
		mod.Close(ctx)
	}
}

// BenchmarkReactorMemory runs reactors that grow memory and fill a map in every task and
// reports the process's resident set before and after: with -benchtime=100000x it shows
// whether 100,000 fresh instances leave anything behind (docs/BENCHMARKS.md).
func BenchmarkReactorMemory(b *testing.B) {
	for _, c := range []struct {
		name, want string
		wasm       []byte
	}{{"grow", "17", samples.ReactorGrow}, {"gomap", "calls=1 map=0", samples.ReactorGoMap}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := New(ctx, Config{CacheDir: testCacheDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			h := load(b, s, c.wasm)
			if res, err := s.Run(ctx, h, "m", nil, task.Limits{}); err != nil || string(res.Stdout) != c.want {
				b.Fatalf("%v %v %q", err, res.Failure, res.Stdout)
			}
			before := rssMiB(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := s.Run(ctx, h, "m", nil, task.Limits{})
				if err != nil || string(res.Stdout) != c.want {
					b.Fatalf("task %d: %v %v %q", i, err, res.Failure, res.Stdout)
				}
			}
			b.StopTimer()
			b.ReportMetric(before, "rss-before-MiB")
			b.ReportMetric(rssMiB(b), "rss-after-MiB")
		})
	}
}

// rssMiB is this process's resident set (VmRSS), in MiB.
func rssMiB(tb testing.TB) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skip("no /proc/self/status:", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	tb.Skip("no VmRSS")
	return 0
}

// BenchmarkReactorParallel runs the Go double as a command and as a reactor from every
// GOMAXPROCS goroutine at once (-cpu 1,2): whether a sandbox's tasks scale across cores.
func BenchmarkReactorParallel(b *testing.B) {
	for _, c := range []struct {
		name string
		opt  options
		wasm []byte
	}{{"command", options{}, samples.DoubleGo}, {"reactor", options{}, samples.DoubleGoReactor},
		{"reactor-data-segments", options{noCoW: true}, samples.DoubleGoReactor}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := newSandbox(ctx, Config{CacheDir: testCacheDir()}, c.opt)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			h := load(b, s, c.wasm)
			if _, err := s.Run(ctx, h, "bench", []byte("21"), task.Limits{}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := s.Run(ctx, h, "bench", []byte("21"), task.Limits{})
					if err != nil || res.Failure != nil || string(res.Stdout) != "42" {
						b.Errorf("%v %v %q", err, res.Failure, res.Stdout)
						return
					}
				}
			})
		})
	}
}
