package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/uuid"

	"faas/internal/testutil"
	"faas/samples"
)

// TestCancelCommand: faas cancel prints one line per cancelled task and exits 0; a task that
// ended already, or an unknown one, is said on stderr and exits 3; no id is a usage error.
func TestCancelCommand(t *testing.T) {
	url := startPlatform(t)
	cliOK(t, url, "", 0, "register", "sleep", writeFile(t, "sleep.wasm", samples.Sleep))
	a, _ := cliOK(t, url, "", 0, "exec", "sleep", "--input", "8000")
	b, _ := cliOK(t, url, "", 0, "exec", "sleep", "--input", "8000")
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	out, _ := cliOK(t, url, "", 0, "cancel", a, b)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], a+" cancelled (was ") || !strings.HasPrefix(lines[1], b+" cancelled (was ") {
		t.Fatalf("cancel printed %q", out)
	}
	if st, _ := cliOK(t, url, "", 0, "status", a); st != "FAILED\n" {
		t.Errorf("status after cancel: %q", st)
	}
	if _, errs := cliOK(t, url, "", 1, "result", a); !strings.Contains(errs, "cancelled: cancelled while") {
		t.Errorf("result of a cancelled task says %q", errs)
	}
	unknown := uuid.NewString()
	out, errs := cliOK(t, url, "", 3, "cancel", a, unknown)
	if out != "" || !strings.Contains(errs, a+" not cancelled: conflict") || !strings.Contains(errs, unknown+" not cancelled: not_found") {
		t.Errorf("cancel of an ended and an unknown task: stdout %q, stderr %q", out, errs)
	}
	out, _ = cliOK(t, url, "", 3, "cancel", a, "--json")
	var line struct {
		TaskID string                `json:"task_id"`
		Status string                `json:"status"`
		Error  struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &line); err != nil || line.TaskID != a || line.Status != "FAILED" || line.Error.Code != "conflict" {
		t.Errorf("--json printed %q (%v)", out, err)
	}
	if _, errs := cliOK(t, url, "", 2, "cancel"); !strings.Contains(errs, "missing TASK_ID") {
		t.Errorf("cancel without ids: %q", errs)
	}
}

// A second interrupt, after the one that ended the batch's context, ends the context its
// cancels run under; the first one does not.
func TestAfterInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	hard, stop := afterInterrupt(ctx)
	defer stop()
	cancel() // the first interrupt, as the command's context sees it
	time.Sleep(2 * sameInterrupt)
	if hard.Err() != nil {
		t.Fatal("the first interrupt ended the cancels' context")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hard.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a second SIGINT did not end the cancels' context")
	}
}

// TestBatchInterruptOnTerminal: the first interrupt of a batch whose stderr is a terminal
// leaves the bar where the batch stopped (not 100%), says how many unfinished tasks it
// cancels, cancels them and exits 130.
func TestBatchInterruptOnTerminal(t *testing.T) {
	url := startPlatform(t)
	cliOK(t, url, "", 0, "register", "sleep", writeFile(t, "sleep.wasm", samples.Sleep))
	const n = 2000
	inputs := writeFile(t, "inputs.jsonl", bytes.Repeat([]byte("20\n"), n))
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
	go func() { defer wg.Done(); _, _ = io.Copy(&raw, ptmx) }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testutil.SyncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Run(ctx, []string{"batch", "sleep", "--inputs", inputs, "--server", url}, strings.NewReader(""), &out, tty)
	}()
	testutil.WaitFor(t, time.Minute, "some results", func() bool { return strings.Count(out.String(), "\n") >= 10 })
	cancel() // what the first SIGINT does to the command's context
	var code int
	select {
	case code = <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the interrupted batch did not return within 30s")
	}
	tty.Close()
	wg.Wait()
	screen := raw.String()
	if code != ExitInterrupted {
		t.Fatalf("exit %d, want %d; terminal:\n%.3000s", code, ExitInterrupted, screen)
	}
	m := regexp.MustCompile(`cancelling the (\d+) unfinished tasks`).FindStringSubmatch(screen)
	if m == nil || !strings.Contains(screen, "faas batch: cancelled ") {
		t.Fatalf("the batch did not say what it cancels; terminal:\n%.3000s", screen)
	}
	// The last bar drawn before the message: where the batch stopped.
	before := screen[:strings.Index(screen, "faas batch: interrupted")]
	bars := regexp.MustCompile(`(\d+)/2000`).FindAllStringSubmatch(before, -1)
	if len(bars) == 0 {
		t.Fatalf("no bar on the terminal:\n%.3000s", screen)
	}
	last := bars[len(bars)-1][1]
	printed := strings.Count(out.String(), "\n")
	if last == "2000" || strings.Contains(before, "100%") || last != strconv.Itoa(printed) {
		t.Errorf("the bar's last count is %s (%d lines printed, of %d): it must show where the batch stopped", last, printed, n)
	}
	t.Logf("stopped at %s/%d; %s unfinished cancelled", last, n, m[1])
}
