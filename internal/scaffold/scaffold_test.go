package scaffold

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"double", "a", "my-fn_2", strings.Repeat("x", 64)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for name, why := range map[string]string{
		"":                      "empty",
		strings.Repeat("x", 65): "65 characters",
		"2fast":                 "lower-case letter",
		"Double":                "lower-case letter",
		"dou ble":               `character 4 (' ')`,
		"../x":                  "lower-case letter",
		"a/b":                   `character 2 ('/')`,
		"a.b":                   `character 2 ('.')`,
	} {
		err := CheckName(name)
		var ne *NameError
		if !errors.As(err, &ne) || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "a-z 0-9 - _") {
			t.Errorf("CheckName(%q) = %v; want a NameError saying %q and what is allowed", name, err, why)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := New(t.TempDir(), "rust", "x"); err == nil || !strings.Contains(err.Error(), "go, c, wat, assemblyscript") {
		t.Errorf("New rust: %v; want the languages listed", err)
	}
	dir := t.TempDir()
	keep := filepath.Join(dir, "mine.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir, Go, "x"); !errors.Is(err, ErrExists) {
		t.Errorf("New into a non-empty directory: %v; want ErrExists", err)
	}
	if b, _ := os.ReadFile(keep); string(b) != "mine" {
		t.Errorf("the existing file became %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("New wrote into the refused directory: %d entries", len(entries))
	}
	// An empty directory is fine.
	if _, err := New(t.TempDir(), WAT, "x"); err != nil {
		t.Errorf("New into an empty directory: %v", err)
	}
}

func TestDetect(t *testing.T) {
	for _, lang := range Langs {
		dir := filepath.Join(t.TempDir(), "p")
		files, err := New(dir, lang, "double")
		if err != nil {
			t.Fatal(err)
		}
		if !contains(files, "README.md") || !contains(files, "input.txt") {
			t.Errorf("%s: wrote %v; want a README.md and an input.txt", lang, files)
		}
		p, err := Detect(dir)
		if err != nil || p.Lang != lang || p.Name != "double" || p.Output() != filepath.Join(dir, "double.wasm") {
			t.Errorf("Detect(%s project) = %+v, %v", lang, p, err)
		}
	}
	cases := map[string]map[string]string{
		"want a go.mod":                      {"notes.txt": "x"},
		"has 2 .wat files (a.wat, b.wat)":    {"a.wat": "", "b.wat": ""},
		"does not depend on assemblyscript":  {"package.json": `{"name":"x","dependencies":{"left-pad":"1"}}`},
		"has no module line":                 {"go.mod": "go 1.24\n"},
		"neither x.ts nor assembly/index.ts": {"package.json": `{"name":"x","devDependencies":{"assemblyscript":"^0.27"}}`},
	}
	for want, files := range cases {
		dir := t.TempDir()
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Detect(dir); !errors.Is(err, ErrNotProject) || !strings.Contains(err.Error(), want) {
			t.Errorf("Detect(%v) = %v; want ErrNotProject saying %q", files, err, want)
		}
	}
	// Several C files build together, named after the directory.
	dir := filepath.Join(t.TempDir(), "multi")
	for _, name := range []string{"b.c", "a.c"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Detect(dir)
	if err != nil || p.Name != "multi" || strings.Join(p.Steps()[0].Args[len(p.Steps()[0].Args)-2:], " ") != "a.c b.c" {
		t.Errorf("Detect(two .c files) = %+v, %v", p, err)
	}
}

func TestGoAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"go1.24": true, "go1.24.3": true, "go1.25rc1": true, "go1.26.8": true,
		"go2.0": true, "go1.23.9": false, "go1.9": false, "devel": false, "go1": false} {
		if got := goAtLeast(v, 1, 24); got != want {
			t.Errorf("goAtLeast(%q) = %v, want %v", v, got, want)
		}
	}
}

// With no tools on PATH, every language says what to install.
func TestMissingTools(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for lang, want := range map[string][]string{
		Go:             {"go (1.24 or newer)", "https://go.dev/dl/"},
		C:              {"clang", "wasm-ld (lld)", "sudo apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"},
		WAT:            {"wat2wasm (wabt)", "sudo apt-get install wabt"},
		AssemblyScript: {"node", "node_modules/.bin/asc", "run npm install in"},
	} {
		dir := filepath.Join(t.TempDir(), "p")
		if _, err := New(dir, lang, "x"); err != nil {
			t.Fatal(err)
		}
		p, err := Detect(dir)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Build(context.Background(), &bytes.Buffer{})
		var te *ToolError
		if !errors.As(err, &te) {
			t.Fatalf("%s without tools: %v; want a ToolError", lang, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", lang, err, w)
			}
		}
	}
}

// Each template builds with its toolchain and behaves as double: 21 → 42, a non-integer →
// its message on stderr and exit 1. It runs on bare wazero, so the reactors are checked
// here whatever the sandbox supports. A language whose toolchain is missing is skipped,
// except Go, which builds this very test.
func TestTemplatesBuildAndRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds modules with real toolchains")
	}
	for _, lang := range []string{Go, C, WAT} {
		t.Run(lang, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "double")
			if _, err := New(dir, lang, "double"); err != nil {
				t.Fatal(err)
			}
			p, err := Detect(dir)
			if err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			err = p.Build(context.Background(), &log)
			var te *ToolError
			if errors.As(err, &te) && lang != Go {
				t.Skipf("toolchain not installed: %v", err)
			}
			if err != nil {
				t.Fatalf("build: %v\n%s", err, log.String())
			}
			if !strings.Contains(log.String(), p.Steps()[0].String()) {
				t.Errorf("build log %q does not show the command", log.String())
			}
			wasm, err := os.ReadFile(p.Output())
			if err != nil {
				t.Fatal(err)
			}
			input, _ := os.ReadFile(filepath.Join(dir, "input.txt"))
			run := bareRunner(t, wasm)
			for _, c := range []struct {
				in, out, stderr string
				exit            uint32
			}{
				{string(input), "42", "", 0},
				{" -4 ", "-8", "", 0},
				{"abc", "", "double: not an integer", 1},
				{"", "", "double: not an integer", 1},
				{"99999999999999999999", "", "double: ", 1},
			} {
				out, stderr, exit := run(c.in)
				if out != c.out || exit != c.exit || !strings.Contains(stderr, c.stderr) {
					t.Errorf("%s on %q: stdout %q, stderr %q, exit %d; want %q, %q, %d", lang, c.in, out, stderr, exit, c.out, c.stderr, c.exit)
				}
			}
		})
	}
}

// bareRunner compiles a module once on plain wazero (its interpreter: compiling a Go module
// to machine code under the race detector takes over ten seconds) and returns a function
// that runs it once: a reactor's _initialize then run, or a command's _start.
func bareRunner(t *testing.T, wasm []byte) func(in string) (string, string, uint32) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { r.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	_, reactor := cm.ExportedFunctions()["run"]
	return func(in string) (string, string, uint32) {
		var out, stderr bytes.Buffer
		cfg := wazero.NewModuleConfig().WithName("").WithStdin(strings.NewReader(in)).WithStdout(&out).WithStderr(&stderr)
		if reactor {
			cfg = cfg.WithStartFunctions("_initialize")
		}
		mod, err := r.InstantiateModule(ctx, cm, cfg)
		if err == nil && reactor {
			_, err = mod.ExportedFunction("run").Call(ctx)
		}
		if mod != nil {
			mod.Close(ctx)
		}
		var exit *sys.ExitError
		switch {
		case errors.As(err, &exit):
			return out.String(), stderr.String(), exit.ExitCode()
		case err != nil:
			t.Fatalf("running on %q: %v", in, err)
		}
		return out.String(), stderr.String(), 0
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A project-local tool (AssemblyScript's node_modules/.bin/asc) runs from a project given
// by a relative path, with the arguments faas build promises. A stand-in asc records them,
// so that this runs without npm.
func TestBuildProjectLocalTool(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skipf("node is not installed: %v", err)
	}
	root := t.TempDir()
	t.Chdir(root)
	if _, err := New("fn", AssemblyScript, "fn"); err != nil {
		t.Fatal(err)
	}
	asc := filepath.Join("fn", "node_modules", ".bin", "asc")
	if err := os.MkdirAll(filepath.Dir(asc), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$@\" > args.txt\nprintf 'module' > \"$5\"\n"
	if err := os.WriteFile(asc, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := Detect("fn")
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := p.Build(context.Background(), &log); err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	args, _ := os.ReadFile(filepath.Join("fn", "args.txt"))
	if string(args) != "fn.ts --config asconfig.json -o fn.wasm\n" || !exists(filepath.Join("fn", "fn.wasm")) {
		t.Fatalf("asc ran with %q; the module exists: %v", args, exists(filepath.Join("fn", "fn.wasm")))
	}
}
