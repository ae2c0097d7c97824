package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"faas/samples"
)

// TestBatchOnTerminal runs faas batch with stdout and stderr both on one pseudo-terminal,
// as a user at a shell does: the progress bar is drawn there too, and every JSON line must
// still come out whole and in order (the bar is erased before lines are written, and drawn
// only under them).
func TestBatchOnTerminal(t *testing.T) {
	url := startPlatform(t)
	cliOK(t, url, "", 0, "register", "double", writeFile(t, "double.wasm", samples.DoubleWAT))
	const n = 3000
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "%d\n", i)
	}
	inputs := writeFile(t, "inputs.jsonl", []byte(in.String()))

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = io.Copy(&raw, ptmx) }() // ends when ptmx closes (EIO)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := Run(ctx, []string{"batch", "double", "--inputs", inputs, "--server", url, "--chunk", "100"},
		strings.NewReader(""), tty, tty)
	tty.Close() // the last slave closed: the reader gets EIO once it has read everything
	wg.Wait()
	if code != 0 {
		t.Fatalf("exit %d; output:\n%.2000s", code, raw.String())
	}

	// On the terminal a line is what follows the last carriage return before its newline
	// (the bar is redrawn with \r; the terminal turns \n into \r\n).
	var next int
	bars := 0
	for _, seg := range strings.Split(raw.String(), "\n") {
		seg = strings.TrimSuffix(seg, "\r")
		if strings.Contains(seg, "tasks") {
			bars++
		}
		if i := strings.LastIndexByte(seg, '\r'); i >= 0 {
			seg = seg[i+1:]
		}
		seg = strings.TrimSpace(seg)
		if seg == "" || !strings.HasPrefix(seg, "{") {
			continue
		}
		var l struct {
			Index  int    `json:"index"`
			Status string `json:"status"`
			Result string `json:"result"`
		}
		if err := json.Unmarshal([]byte(seg), &l); err != nil {
			t.Fatalf("line %d is not whole: %q (%v)", next, seg, err)
		}
		if l.Index != next || l.Status != "COMPLETED" || l.Result != fmt.Sprint(2*next) {
			t.Fatalf("line %+v, want index %d COMPLETED %d", l, next, 2*next)
		}
		next++
	}
	if next != n {
		t.Fatalf("%d whole lines on the terminal, want %d", next, n)
	}
	if bars == 0 {
		t.Fatalf("no progress bar was drawn on the terminal")
	}
}

// TestRunOnTerminal: faas run's report starts on a line of its own when the result, which
// has no newline, is on the same terminal.
func TestRunOnTerminal(t *testing.T) {
	code, out := onTerminal(t, "run", writeFile(t, "double.wasm", samples.DoubleWAT), "--input", "21", "--cache-dir", t.TempDir())
	if code != 0 || !strings.HasPrefix(out, "42\r\nCOMPLETED in ") {
		t.Fatalf("exit %d; terminal: %q", code, out)
	}
}

// TestExecOnTerminal: faas exec --wait ends a result without a newline with one on a
// terminal, so that the prompt starts on a line of its own; redirected it adds nothing.
func TestExecOnTerminal(t *testing.T) {
	url := startPlatform(t)
	cliOK(t, url, "", 0, "register", "double", writeFile(t, "double.wasm", samples.DoubleWAT))
	if code, out := onTerminal(t, "exec", "double", "--input", "21", "--wait", "--server", url); code != 0 || out != "42\r\n" {
		t.Fatalf("exit %d; terminal: %q, want \"42\\r\\n\"", code, out)
	}
	if out, _ := cliOK(t, url, "", 0, "exec", "double", "--input", "21", "--wait"); out != "42" {
		t.Fatalf("redirected: %q, want \"42\" byte for byte", out)
	}
}

// onTerminal runs faas with args, stdout and stderr on one pseudo-terminal, and returns the
// exit code and what the terminal showed.
func onTerminal(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	var raw bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = io.Copy(&raw, ptmx) }() // ends when ptmx closes (EIO)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := Run(ctx, args, strings.NewReader(""), tty, tty)
	tty.Close()
	wg.Wait()
	return code, raw.String()
}
