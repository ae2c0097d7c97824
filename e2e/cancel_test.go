package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"faas/internal/testutil"
	"faas/store"
	"faas/task"
)

// TestBatchInterruptCancels: SIGINT to the built `faas batch` of 20,000 sleep inputs against
// `faas server` and a dispatcher: it says how many unfinished tasks it submitted, cancels
// them and exits 130. Afterwards every task it submitted (found in Redis) is COMPLETED or
// FAILED cancelled, none QUEUED or RUNNING, each announced terminal exactly once, and the
// count it printed is what Redis holds.
func TestBatchInterruptCancels(t *testing.T) {
	p := newPlatform(t)
	done := p.countDone()
	p.dispatcher("dispatcher", "local", "-w", "4")
	_, _, addr := p.serverAt("server")

	const n = 20_000
	inputs := filepath.Join(t.TempDir(), "inputs.jsonl")
	if err := os.WriteFile(inputs, bytes.Repeat([]byte("50\n"), n), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr testutil.SyncBuffer
	batch := exec.Command(faasBin, "batch", "sleep", "--inputs", inputs, "--server", "http://"+addr, "--quiet")
	batch.Stdout, batch.Stderr = &stdout, &stderr
	if err := batch.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- batch.Wait() }()
	defer batch.Process.Kill()
	// Interrupt once some tasks have finished and many are queued or running.
	testutil.WaitFor(t, time.Minute, "the batch printing results", func() bool {
		return strings.Count(stdout.String(), "\n") >= 20
	})
	interrupted := time.Now()
	if err := batch.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		t.Logf("faas batch exited %v after SIGINT", time.Since(interrupted).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatalf("faas batch did not exit within 30s of SIGINT; stderr:\n%s", stderr.String())
	}
	if code := batch.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("faas batch exited %d, want 130; stderr:\n%s", code, stderr.String())
	}
	said := regexp.MustCompile(`cancelling the (\d+) unfinished tasks it submitted`).FindStringSubmatch(stderr.String())
	counted := regexp.MustCompile(`cancelled (\d+) tasks; (\d+) had finished already`).FindStringSubmatch(stderr.String())
	if said == nil || counted == nil {
		t.Fatalf("faas batch did not say what it cancelled; stderr:\n%s", stderr.String())
	}
	t.Logf("faas batch: %s", strings.TrimSpace(stderr.String()))

	// Every task of the batch, as Redis holds them: poll each id until none is QUEUED or
	// RUNNING (the cancel is immediate; the bound is generous).
	ids := taskIDs(t, p)
	if len(ids) == 0 || len(ids) > n {
		t.Fatalf("%d tasks in Redis, want 1 to %d", len(ids), n)
	}
	var recs []store.Record
	testutil.WaitForProgress(t, 30*time.Second, "no task QUEUED or RUNNING", func() (bool, string) {
		rs, err := p.records(ids)
		if err != nil {
			return false, err.Error()
		}
		recs = rs
		c := tally(rs)
		return c[task.Queued] == 0 && c[task.Running] == 0, fmt.Sprint(c)
	})
	completed, cancelled := 0, 0
	for _, r := range recs {
		switch {
		case r.Status == task.Completed:
			completed++
		case r.Status == task.Failed && r.Error != nil && r.Error.Kind == task.KindCancelled:
			cancelled++
		default:
			t.Errorf("task %s: %s %+v, want COMPLETED or FAILED cancelled", r.ID, r.Status, r.Error)
		}
	}
	t.Logf("%d tasks submitted before the interrupt: %d COMPLETED, %d cancelled", len(ids), completed, cancelled)
	if got, _ := strconv.Atoi(counted[1]); got != cancelled || cancelled == 0 {
		t.Errorf("faas batch said it cancelled %s, Redis holds %d cancelled", counted[1], cancelled)
	}
	unfinished, _ := strconv.Atoi(said[1])
	if ended, _ := strconv.Atoi(counted[2]); unfinished != cancelled+ended {
		t.Errorf("said %d unfinished = %d cancelled + %d finished meanwhile? no", unfinished, cancelled, ended)
	}
	done.check(t, ids)
}

// taskIDs lists the ids of every task record in the platform's Redis.
func taskIDs(t *testing.T, p *platform) []string {
	t.Helper()
	rdb := p.redis.Client(t)
	var ids []string
	iter := rdb.Scan(context.Background(), 0, "faas:task:*", 1000).Iterator()
	for iter.Next(context.Background()) {
		ids = append(ids, strings.TrimPrefix(iter.Val(), "faas:task:"))
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
