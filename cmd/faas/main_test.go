package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{"help", []string{"--help"}, 0, "faas dev", ""},
		{"no arguments prints help", nil, 0, "Usage:", ""},
		{"unknown command", []string{"nope"}, 2, "", `unknown command "nope"`},
		{"usage error", []string{"exec"}, 2, "", "missing FUNCTION"},
		{"unreachable", []string{"status", "x", "--server", "http://127.0.0.1:1"}, 3, "", "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(t.Context(), tc.args, strings.NewReader(""), &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Fatalf("exit %d (want %d); stdout %q; stderr %q", code, tc.code, out.String(), errb.String())
			}
		})
	}
}
