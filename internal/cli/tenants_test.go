package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/samples"
)

func TestServerWithAPIKeys(t *testing.T) {
	lineA, _, code := runCLI(t, t.Context(), "", "apikey", "team-a")
	f := strings.Fields(lineA)
	if code != 0 || len(f) != 2 || f[0] != "team-a" || len(f[1]) < 40 {
		t.Fatalf("apikey printed %q (exit %d)", lineA, code)
	}
	keyA := f[1]
	lineB, _, _ := runCLI(t, t.Context(), "", "apikey", "team-b")
	keyB := strings.Fields(lineB)[1]
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("# who may call\n"+strings.TrimSpace(lineA)+" weight=3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rs := redistest.Start(t)
	srv := startDaemon(t, "server", "--addr", "127.0.0.1:0", "--redis", rs.URL, "--cache-dir", "",
		"--api-keys", keys, "--log-level", "debug")
	url := "http://" + srv.waitLog(t, listenRE)
	srv.waitLog(t, regexp.MustCompile(`SIGHUP re-reads the API keys`))
	// The namespaces' claim weights go to Redis, for every dispatcher's claims.
	rc := rs.Client(t)
	weightOf := func(ns string) string {
		srv.waitLog(t, regexp.MustCompile(`namespaces' weights written`))
		v, _ := rc.HGet(t.Context(), "faas:nsweights", ns).Result()
		return v
	}
	if w := weightOf("team-a"); w != "3" {
		t.Fatalf("team-a's weight in Redis: %q, want 3", w)
	}
	t.Setenv("FAAS_REDIS_URL", rs.URL)
	startDaemon(t, "dispatcher", "-m", "local", "-w", "1", "--cache-dir", "")
	double := writeFile(t, "double.wasm", samples.DoubleWAT)

	_, errs := cliOK(t, url, "", ExitServer, "register", "double", double)
	if !strings.Contains(errs, "unauthorized") || strings.Contains(errs, keyA) {
		t.Fatalf("register without a key: %q", errs)
	}
	cliOK(t, url, "", 0, "register", "double", double, "--api-key", keyA)
	t.Setenv("FAAS_API_KEY", keyA)
	if out, _ := cliOK(t, url, "", 0, "exec", "double", "--input", "21", "--wait", "--timeout", "30s"); out != "42" {
		t.Fatalf("exec printed %q", out)
	}
	// team-b is not in the file yet; after SIGHUP it is, and sees none of team-a's.
	cliOK(t, url, "", ExitServer, "functions", "--api-key", keyB)
	if err := os.WriteFile(keys, []byte(lineA+strings.TrimSpace(lineB)+" weight=2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	srv.waitLog(t, regexp.MustCompile(`SIGHUP: API keys reloaded`))
	testutil.WaitFor(t, 10*time.Second, "the weights of the reloaded file in Redis", func() bool {
		all, err := rc.HGetAll(t.Context(), "faas:nsweights").Result()
		return err == nil && len(all) == 1 && all["team-b"] == "2"
	})
	if out, _ := cliOK(t, url, "", 0, "functions", "--api-key", keyB); out != "" {
		t.Fatalf("team-b lists %q", out)
	}
	cliOK(t, url, "", ExitServer, "exec", "double", "--input", "1", "--api-key", keyB)
	// team-b's own "double" (an echo) changes nothing for team-a's.
	cliOK(t, url, "", 0, "register", "double", writeFile(t, "echo.wasm", samples.Echo), "--api-key", keyB)
	if out, _ := cliOK(t, url, "", 0, "exec", "double", "--input", "21", "--wait", "--timeout", "30s"); out != "42" {
		t.Fatalf("team-a's double printed %q after team-b registered one", out)
	}
	if out, _ := cliOK(t, url, "", 0, "exec", "double", "--input", "21", "--wait", "--timeout", "30s", "--api-key", keyB); out != "21" {
		t.Fatalf("team-b's double printed %q", out)
	}

	out, _ := cliOK(t, url, "", 0, "delete", "double")
	if !uuidRE.MatchString(out) {
		t.Fatalf("delete printed %q", out)
	}
	if _, errs := cliOK(t, url, "", ExitServer, "exec", "double", "--input", "21"); !strings.Contains(errs, "no function") {
		t.Fatalf("exec after delete: %q", errs)
	}
}
