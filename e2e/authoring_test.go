package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"faas/internal/testutil"
)

// The author's path, with the built binary, for every language: faas new, faas build,
// faas run, faas register and faas exec against a faas dev started here. A language is
// skipped only when its toolchain is not installed (faas build says so, exit 2) or, for
// AssemblyScript, when npm install cannot reach the registry; Go never skips for a tool.
func TestAuthoring(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: tests on real processes are skipped with -short")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	dev := startProc(t, "dev", "dev", "--addr", addr, "-w", "2")
	waitHealthy(t, dev, addr)
	server := "http://" + addr
	for _, lang := range []string{"go", "c", "wat", "assemblyscript"} {
		t.Run(lang, func(t *testing.T) {
			name := "double-" + lang
			dir := filepath.Join(t.TempDir(), name)
			faas(t, 0, "", "new", lang, name, "--dir", dir)
			if lang == "assemblyscript" {
				npmInstall(t, dir)
			}
			wasm, errs, code := faasCode(t, "", "build", dir)
			if code == 2 && strings.Contains(errs, "not installed") && lang != "go" {
				t.Skipf("the %s toolchain is not installed here; faas build says: %s", lang, strings.TrimSpace(errs))
			}
			if code != 0 {
				t.Fatalf("faas build: exit %d\n%s", code, errs)
			}
			wasm = strings.TrimSpace(wasm)
			if want := filepath.Join(dir, name+".wasm"); wasm != want {
				t.Fatalf("faas build printed %q, want %q", wasm, want)
			}
			_, errs, code = faasCode(t, "", "register", name, wasm, "--server", server)
			if code != 0 {
				t.Fatalf("faas register: exit %d\n%s", code, errs)
			}
			input := filepath.Join(dir, "input.txt")
			if out := faas(t, 0, "", "exec", name, "--input-file", input, "--wait", "--server", server); out != "42" {
				t.Fatalf("faas exec %s on input.txt: %q, want 42", name, out)
			}
			out, errs, code := faasCode(t, "", "exec", name, "--input", "twenty", "--wait", "--server", server)
			if code != 1 || out != "" || !strings.Contains(errs, "exit: exit code 1") || !strings.Contains(errs, name+": not an integer") {
				t.Fatalf("faas exec %s on a non-integer: exit %d, stdout %q, stderr %q; want exit 1 naming the kind and the function's message", name, code, out, errs)
			}
			// faas run gives what the platform gave, here, without it.
			out, errs, code = faasCode(t, "", "run", wasm, "--input-file", input, "--cache-dir", cacheDir)
			if code != 0 || out != "42" || !strings.Contains(errs, "COMPLETED in ") {
				t.Fatalf("faas run: exit %d, stdout %q, stderr %q", code, out, errs)
			}
			t.Logf("%s: %s", lang, strings.TrimSpace(errs))
		})
	}
}

// npmInstall installs an AssemblyScript project's compiler, or skips when npm or its
// registry cannot be reached.
func npmInstall(t *testing.T, dir string) {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skipf("npm is not installed (Debian: sudo apt-get install npm): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--fetch-timeout=20000", "--fetch-retries=1")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("npm install (assemblyscript, @assemblyscript/wasi-shim) failed, the registry may be unreachable: %v\n%s", err, out)
	}
}

// faasCode runs the built binary with args and returns its stdout, stderr and exit code.
func faasCode(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(faasBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	// GOFLAGS of the test run (-race) must not reach the wasip1 build of faas build.
	cmd.Env = append(os.Environ(), "NO_PROXY=*", "GOFLAGS=")
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("faas %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), 0
}

// faas runs the built binary and checks its exit code; it returns stdout.
func faas(t *testing.T, want int, stdin string, args ...string) string {
	t.Helper()
	out, errs, code := faasCode(t, stdin, args...)
	if code != want {
		t.Fatalf("faas %s: exit %d, want %d; stdout %q; stderr %q", strings.Join(args, " "), code, want, out, errs)
	}
	return out
}
