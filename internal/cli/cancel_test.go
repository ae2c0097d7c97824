package cli

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

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
