package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"faas/client"
	"faas/samples"
)

// faas run: one module, once, in the sandbox, with no server and no Redis.
func TestRunCommand(t *testing.T) {
	cache := t.TempDir()
	double := writeFile(t, "double.wasm", samples.DoubleWAT)
	input := writeFile(t, "input.txt", []byte("  -21\n"))
	for _, tc := range []struct {
		name      string
		args      []string
		stdin     string
		code      int
		stdout    string
		stderr    []string // each in stderr, in this order
		notStderr string
	}{
		{"completed", []string{"run", double, "--input", "21"}, "", 0, "42",
			[]string{"COMPLETED in ", " ms, cpu_units "}, "FAILED"},
		{"repeat", []string{"run", double, "--input", "21", "--repeat", "5"}, "", 0, "42",
			[]string{"COMPLETED after 5 runs: median ", " ms, fastest ", " ms per task, cpu_units "}, ""},
		{"repeat stops at the first failure", []string{"run", double, "--input", "x", "--repeat", "5"}, "", 1, "",
			[]string{"double: not an integer", "FAILED exit: exit code 2 in "}, "runs"},
		{"repeat zero", []string{"run", double, "--repeat", "0"}, "", 2, "", []string{"--repeat 0: want 1 to 1000000"}, ""},
		{"input file", []string{"run", double, "--input-file", input}, "", 0, "-42", []string{"COMPLETED"}, ""},
		{"input on stdin", []string{"run", double, "--input-file", "-"}, "7", 0, "14", []string{"COMPLETED"}, ""},
		{"no input", []string{"run", writeFile(t, "echo.wasm", samples.Echo)}, "ignored", 0, "", []string{"COMPLETED"}, ""},
		{"failed: the function's stderr, then the kind", []string{"run", double, "--input", "abc"}, "", 1, "",
			[]string{"double: not an integer", "FAILED exit: exit code 2 in "}, "COMPLETED"},
		{"timeout", []string{"run", writeFile(t, "loop.wasm", samples.Hostile["infinite_loop"]), "--timeout", "200ms"}, "", 1, "",
			[]string{"FAILED timeout: ran past its deadline of 200 ms (timeout_ms)"}, ""},
		{"cpu budget", []string{"run", writeFile(t, "spin.wasm", samples.Spin), "--cpu-units", "1000"}, "", 1, "",
			[]string{"FAILED cpu_limit: "}, ""},
		{"memory limit", []string{"run", writeFile(t, "bomb.wasm", samples.Hostile["memory_bomb"]), "--memory", "2MiB"}, "", 1, "",
			[]string{"FAILED out_of_memory: "}, ""},
		{"invalid module", []string{"run", writeFile(t, "bad.wasm", samples.Hostile["bad_import"])}, "", 2, "",
			[]string{"bad.wasm: invalid module: "}, "COMPLETED"},
		{"not wasm", []string{"run", input}, "", 2, "", []string{"input.txt: invalid module: "}, ""},
		{"missing file", []string{"run", "/nonexistent/x.wasm"}, "", 2, "", []string{"reading the module"}, ""},
		{"both inputs", []string{"run", double, "--input", "1", "--input-file", input}, "", 2, "", []string{"not both"}, ""},
		{"memory not MiB", []string{"run", double, "--memory", "1000"}, "", 2, "", []string{`--memory "1000": want a whole number of MiB`}, ""},
		{"memory above the maximum", []string{"run", double, "--memory", "2GiB"}, "", 2, "", []string{"memory_mb is 2048, above the server's maximum of 1024"}, ""},
		{"timeout not ms", []string{"run", double, "--timeout", "1500us"}, "", 2, "", []string{"--timeout 1.5ms: want a positive whole number of milliseconds"}, ""},
		{"negative cpu units", []string{"run", double, "--cpu-units", "-1"}, "", 2, "", []string{"--cpu-units must not be negative"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := runCLI(t, context.Background(), tc.stdin, append(tc.args, "--cache-dir", cache)...)
			if code != tc.code || out != tc.stdout {
				t.Fatalf("exit %d, stdout %q; want %d, %q; stderr %q", code, out, tc.code, tc.stdout, errs)
			}
			rest := errs
			for _, w := range tc.stderr {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stderr %q: want %q (in order %q)", errs, w, tc.stderr)
				}
				rest = rest[i+len(w):]
			}
			if tc.notStderr != "" && strings.Contains(errs, tc.notStderr) {
				t.Fatalf("stderr %q has %q", errs, tc.notStderr)
			}
		})
	}
}

func TestRunJSON(t *testing.T) {
	cache := t.TempDir()
	double := writeFile(t, "double.wasm", samples.DoubleWAT)
	for _, tc := range []struct {
		in   string
		code int
		want runOutcome
	}{
		{"21", 0, runOutcome{Status: "COMPLETED", Result: "42", ResultEncoding: "utf-8"}},
		{"x", 1, runOutcome{Status: "FAILED", ResultEncoding: "utf-8", Stderr: "double: not an integer\n", StderrEncoding: "utf-8"}},
	} {
		out, errs, code := runCLI(t, context.Background(), "", "run", double, "--input", tc.in, "--json", "--cache-dir", cache)
		if code != tc.code || errs != "" {
			t.Fatalf("input %q: exit %d, stderr %q; want %d and nothing on stderr", tc.in, code, errs, tc.code)
		}
		var got runOutcome
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("stdout %q: %v", out, err)
		}
		if got.CPUUnits == 0 || got.DurationMs <= 0 || got.MinMs <= 0 || got.MinMs > got.DurationMs || got.CompileMs <= 0 || got.Runs != 1 {
			t.Errorf("input %q: cpu_units, duration_ms and compile_ms should be set: %s", tc.in, out)
		}
		if (got.Error != nil) != (tc.want.Status == "FAILED") || got.Error != nil && got.Error.Kind != "exit" {
			t.Errorf("input %q: error %+v", tc.in, got.Error)
		}
		got.CPUUnits, got.DurationMs, got.MinMs, got.CompileMs, got.Runs, got.Error = 0, 0, 0, 0, 0, nil
		if got != tc.want {
			t.Errorf("input %q: %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// A module faas run refuses is refused by registration with the same reason.
func TestRunRefusesAsRegistration(t *testing.T) {
	url := startPlatform(t)
	c := client.New(url)
	cache := t.TempDir()
	for _, name := range []string{"bad_import", "table_2gib"} {
		wasm := samples.Hostile[name]
		_, err := c.Register(context.Background(), name, wasm, nil)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Code != "invalid_module" {
			t.Fatalf("registering %s: %v; want invalid_module", name, err)
		}
		_, errs, code := runCLI(t, context.Background(), "", "run", writeFile(t, name+".wasm", wasm), "--cache-dir", cache)
		if code != ExitUsage || !strings.Contains(errs, ae.Message) {
			t.Errorf("faas run %s: exit %d, stderr %q; want 2 and registration's %q", name, code, errs, ae.Message)
		}
	}
}

func TestNewAndBuildCommands(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "proj")
	out, errs, code := runCLI(t, ctx, "", "new", "wat", "twice", "--dir", dir)
	if code != 0 || !strings.Contains(out, filepath.Join(dir, "twice.wat")) || !strings.Contains(errs, "next: cd "+dir+" && faas build") {
		t.Fatalf("faas new: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"existing directory", []string{"new", "go", "x", "--dir", dir}, 2, dir + ": exists and is not an empty directory (4 entries)"},
		{"a file", []string{"new", "go", "x", "--dir", filepath.Join(dir, "input.txt")}, 2, "exists and is not an empty directory: it is a file"},
		{"bad name", []string{"new", "go", "My.Fn", "--dir", t.TempDir()}, 2, `bad NAME "My.Fn"`},
		{"bad language", []string{"new", "rust", "x"}, 2, `unknown language "rust": want one of go, c, wat, assemblyscript`},
		{"missing name", []string{"new", "go"}, 2, "missing NAME"},
		{"no project", []string{"build", t.TempDir()}, 2, "no function project found"},
		{"not a directory", []string{"build", filepath.Join(dir, "twice.wat")}, 2, "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := runCLI(t, ctx, "", tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, tc.code, tc.want)
			}
		})
	}
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skipf("wat2wasm (Debian package wabt) is not installed: %v", err)
	}
	out, errs, code = runCLI(t, ctx, "", "build", dir)
	if code != 0 || out != filepath.Join(dir, "twice.wasm")+"\n" || !strings.Contains(errs, "wat2wasm twice.wat -o twice.wasm") {
		t.Fatalf("faas build: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	out, errs, code = runCLI(t, ctx, "", "run", strings.TrimSpace(out), "--input-file", filepath.Join(dir, "input.txt"), "--cache-dir", t.TempDir())
	if code != 0 || out != "42" {
		t.Fatalf("faas run: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// The toolchain's own error, and exit 1.
	if err := os.WriteFile(filepath.Join(dir, "twice.wat"), []byte("(module (func $f (i32.bogus)))"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs, code = runCLI(t, ctx, "", "build", dir)
	if code != 1 || !strings.Contains(errs, "bogus") || !strings.Contains(errs, "building "+dir+" failed") {
		t.Fatalf("faas build of a broken source: exit %d, stderr %q; want 1 with wat2wasm's message", code, errs)
	}
	// No tools: what to install, exit 2, nothing installed.
	t.Setenv("PATH", t.TempDir())
	_, errs, code = runCLI(t, ctx, "", "build", dir)
	if code != 2 || !strings.Contains(errs, "sudo apt-get install wabt") {
		t.Fatalf("faas build without wat2wasm: exit %d, stderr %q", code, errs)
	}
}
