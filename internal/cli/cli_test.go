package cli

import (
	"context"
	"faas/internal/testutil"
	"runtime/debug"
	"strings"
	"testing"
)

// runCLI runs the command line in-process and returns stdout, stderr and the exit code.
func runCLI(tb testing.TB, ctx context.Context, stdin string, args ...string) (string, string, int) {
	tb.Helper()
	var out, errb testutil.SyncBuffer
	code := Run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"exec", "f", "--bogus"}, "unknown flag: --bogus"},
		{"exec without function", []string{"exec"}, "missing FUNCTION"},
		{"exec extra argument", []string{"exec", "f", "g"}, `unexpected argument "g"`},
		{"exec both inputs", []string{"exec", "f", "--input", "a", "--input-file", "b"}, "not both"},
		{"exec bad timeout", []string{"exec", "f", "--timeout", "soon"}, "--timeout"},
		{"exec missing input file", []string{"exec", "f", "--input-file", "/nonexistent/x"}, "reading the input"},
		{"register one argument", []string{"register", "double"}, "missing FILE.wasm"},
		{"register missing file", []string{"register", "double", "/nonexistent/x.wasm"}, "reading the module"},
		{"register negative limit", []string{"register", "d", "x.wasm", "--memory-mb", "-1"}, "--memory-mb must not be negative"},
		{"status without id", []string{"status"}, "missing TASK_ID"},
		{"result negative wait", []string{"result", "x", "--wait", "-1s"}, "--wait must not be negative"},
		{"batch chunk zero", []string{"batch", "f", "--chunk", "0"}, "--chunk"},
		{"batch concurrency zero", []string{"batch", "f", "--concurrency", "0"}, "--concurrency"},
		{"batch window below chunk", []string{"batch", "f", "--chunk", "100", "--window", "10"}, "--window"},
		{"batch missing inputs file", []string{"batch", "f", "--inputs", "/nonexistent/in.jsonl"}, "no such file"},
		{"dispatcher without mode", []string{"dispatcher"}, "missing -m"},
		{"dispatcher bad mode", []string{"dispatcher", "-m", "turbo"}, `-m "turbo"`},
		{"dispatcher zero workers", []string{"dispatcher", "-m", "local", "-w", "0"}, "-w must be at least 1"},
		{"dispatcher pull without port", []string{"dispatcher", "-m", "pull"}, "needs -p PORT"},
		{"dispatcher push bad port", []string{"dispatcher", "-m", "push", "-p", "70000"}, "-p 70000"},
		{"dispatcher pull port zero", []string{"dispatcher", "-m", "pull", "-p", "0"}, "-p 0: want a TCP port, 1 to 65535"},
		{"dispatcher bad metrics addr", []string{"dispatcher", "-m", "local", "--metrics-addr", "9100"}, "--metrics-addr"},
		{"dispatcher bad log level", []string{"dispatcher", "-m", "local", "--log-level", "loud"}, "--log-level"},
		{"worker bad mode", []string{"worker", "shove", "2", "tcp://127.0.0.1:5555"}, `mode "shove"`},
		{"worker bad N", []string{"worker", "pull", "zero", "tcp://127.0.0.1:5555"}, `N "zero"`},
		{"worker zero N", []string{"worker", "pull", "0", "tcp://127.0.0.1:5555"}, `N "0"`},
		{"worker bad endpoint", []string{"worker", "pull", "2", "127.0.0.1:5555"}, "tcp://HOST:PORT"},
		{"worker missing endpoint", []string{"worker", "push", "2"}, "missing tcp://HOST:PORT"},
		{"server extra argument", []string{"server", "8000"}, `unexpected argument "8000" (takes no arguments)`},
		{"server bad addr", []string{"server", "--addr", "nowhere"}, "--addr"},
		{"server bad max", []string{"server", "--max-batch", "0"}, "--max-batch"},
		{"server keyless off loopback", []string{"server", "--addr", "0.0.0.0:0"}, "refusing to serve without API keys on 0.0.0.0:0"},
		{"server keyless on all addresses", []string{"server", "--addr", ":8000"}, "refusing to serve without API keys"},
		{"server missing key file", []string{"server", "--api-keys", "/nonexistent/keys"}, "--api-keys"},
		{"server negative quota", []string{"server", "--quota-rate", "-1"}, "--quota-*"},
		{"apikey bad namespace", []string{"apikey", "a:b"}, "namespace"},
		{"delete without function", []string{"delete"}, "missing FUNCTION"},
		{"dev zero workers", []string{"dev", "-w", "0"}, "-w must be at least 1"},
		{"dev bad log format", []string{"dev", "--log-format", "xml"}, "--log-format"},
		{"server bad compile memory", []string{"server", "--compile-memory", "lots"}, "--compile-memory"},
		{"dev tiny compile memory", []string{"dev", "--compile-memory", "1MiB"}, "at least 64MiB"},
		{"worker short compile timeout", []string{"worker", "pull", "1", "tcp://127.0.0.1:5555", "--compile-timeout", "10ms"}, "--compile-timeout"},
		{"dispatcher tiny cache", []string{"dispatcher", "-m", "local", "--cache-max-bytes", "10"}, "--cache-max-bytes"},
		{"server zero log followers", []string{"server", "--max-log-followers", "0"}, "--max-log-followers must be positive"},
		{"logs without function", []string{"logs"}, "missing FUNCTION"},
		{"logs negative since", []string{"logs", "f", "--since", "-1m"}, "--since must be between 0 and 24h"},
		{"logs long since", []string{"logs", "f", "--since", "48h"}, "--since must be between 0 and 24h"},
		{"logs zero limit", []string{"logs", "f", "--limit", "0"}, "--limit must be 1 to 1000"},
		{"workers extra argument", []string{"workers", "x"}, `unexpected argument "x"`},
		{"worker negative connect timeout", []string{"worker", "pull", "1", "tcp://127.0.0.1:5555", "--connect-timeout", "-1s"}, "--connect-timeout must not be negative"},
		{"compile-module without limits", []string{"compile-module", "--cache-dir", "/tmp"}, "--compile-memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := runCLI(t, t.Context(), "", tc.args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, ExitUsage, errs)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q, want it to contain %q", errs, tc.want)
			}
			if n := strings.Count(strings.TrimRight(errs, "\n"), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want one: %q", n+1, errs)
			}
		})
	}
}

func TestFlagsAfterOrBeforeArguments(t *testing.T) {
	// Both orders reach the same validation (the bad --chunk), so flags were parsed.
	for _, args := range [][]string{
		{"batch", "f", "--chunk", "0"},
		{"batch", "--chunk", "0", "f"},
		{"batch", "--chunk=0", "f"},
	} {
		_, errs, code := runCLI(t, t.Context(), "", args...)
		if code != ExitUsage || !strings.Contains(errs, "--chunk") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
}

func TestHelpHasExamples(t *testing.T) {
	for _, c := range []string{"register", "exec", "status", "result", "batch", "functions", "server", "dispatcher", "worker", "dev"} {
		t.Run(c, func(t *testing.T) {
			out, errs, code := runCLI(t, t.Context(), "", c, "--help")
			if code != 0 || !strings.Contains(out, "Examples:") {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
		})
	}
	out, _, _ := runCLI(t, t.Context(), "", "dev", "--help")
	if !strings.Contains(out, "keeps nothing on disk") {
		t.Errorf("dev --help does not say the embedded Redis keeps nothing on disk")
	}
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		out, errs, code := runCLI(t, t.Context(), "", "completion", sh)
		if code != 0 || len(out) < 100 {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", sh, code, len(out), errs)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, errs, code := runCLI(t, t.Context(), "", args...)
		if code != 0 || out != version()+"\n" || !strings.HasPrefix(out, "faas ") || !strings.Contains(out, "go1.") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, out, errs, version())
		}
	}
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "faas", Version: "v1.2.3"},
		Deps: []*debug.Module{{Path: "github.com/tetratelabs/wazero", Version: "v1.12.0"}},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-11-28T04:00:00Z"}}}
	if got, want := describeBuild(bi), "faas v1.2.3, commit 0123456789ab (modified) of 2026-11-28T04:00:00Z, go1.26.8, wazero v1.12.0"; got != want {
		t.Errorf("describeBuild = %q, want %q", got, want)
	}
}

func TestServerAddress(t *testing.T) {
	// HOST:PORT means http://HOST:PORT: the command gets as far as the (dead) server.
	_, errs, code := runCLI(t, t.Context(), "", "status", "0f8fad5b-d9cb-469f-a165-70867728950e", "--server", "127.0.0.1:1")
	if code != ExitServer || !strings.Contains(errs, "http://127.0.0.1:1/") {
		t.Errorf("--server 127.0.0.1:1: exit %d, stderr %q; want exit 3 from http://127.0.0.1:1", code, errs)
	}
	for _, bad := range []string{"ftp://h:1", "http://", "http://h:1/?x=1", "http://u:p@h:1", ":::"} {
		_, errs, code := runCLI(t, t.Context(), "", "status", "x", "--server", bad)
		if code != ExitUsage || !strings.Contains(errs, "use http://HOST:PORT") {
			t.Errorf("--server %q: exit %d, stderr %q; want a usage error saying which form to use", bad, code, errs)
		}
	}
	t.Setenv("FAAS_SERVER", "ftp://h:1")
	if _, errs, code := runCLI(t, t.Context(), "", "status", "x"); code != ExitUsage || !strings.Contains(errs, "FAAS_SERVER") {
		t.Errorf("bad FAAS_SERVER: exit %d, stderr %q", code, errs)
	}
}

func TestUnreachableServer(t *testing.T) {
	const dead = "http://127.0.0.1:1" // nothing listens on port 1
	for _, args := range [][]string{
		{"exec", "double", "--input", "1"},
		{"exec", "0f8fad5b-d9cb-469f-a165-70867728950e", "--input", "1", "--wait"},
		{"status", "0f8fad5b-d9cb-469f-a165-70867728950e"},
		{"result", "0f8fad5b-d9cb-469f-a165-70867728950e"},
		{"functions"},
		{"batch", "double"},
	} {
		t.Run(args[0], func(t *testing.T) {
			out, errs, code := runCLI(t, t.Context(), "1\n", append(args, "--server", dead)...)
			if code != ExitServer || out != "" || errs == "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 3, a message", code, out, errs)
			}
		})
	}
	t.Run("FAAS_SERVER", func(t *testing.T) {
		t.Setenv("FAAS_SERVER", dead)
		_, errs, code := runCLI(t, t.Context(), "", "status", "x")
		if code != ExitServer || !strings.Contains(errs, "127.0.0.1:1") {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
	})
}

func TestLooksLikeUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"0f8fad5b-d9cb-469f-a165-70867728950e": true,
		"0F8FAD5B-D9CB-469F-A165-70867728950E": true,
		"0f8fad5b-d9cb-469f-a165-70867728950":  false,
		"0f8fad5bxd9cb-469f-a165-70867728950e": false,
		"double":                               false,
	} {
		if got := looksLikeUUID(s); got != want {
			t.Errorf("looksLikeUUID(%q) = %v", s, got)
		}
	}
}
