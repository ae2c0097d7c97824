package dispatch

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"faas/internal/testutil"
	"faas/task"
)

func TestOutcomeLogRateLimitsFailures(t *testing.T) {
	var buf testutil.SyncBuffer
	l := newOutcomeLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	fail := func(i int) task.Outcome {
		return task.Outcome{Ref: task.Ref{ID: "t" + string(rune('a'+i)), Attempt: 1},
			Failure: &task.Failure{Kind: task.KindExit, Message: "exit code 2"},
			Stderr:  []byte("double: not an integer\nsecond line\n")}
	}
	for i := range 25 {
		l.finished(fail(i), "double")
	}
	l.finished(task.Outcome{Ref: task.Ref{ID: "ok", Attempt: 1}}, "double") // debug only
	out := buf.String()
	if n := strings.Count(out, `msg="task failed"`); n != failLogBurst {
		t.Fatalf("%d failures logged at info in one burst, want %d:\n%s", n, failLogBurst, out)
	}
	first := strings.SplitN(out, "\n", 2)[0]
	for _, want := range []string{"task_id=ta", "function=double", "kind=exit", `stderr="double: not an integer"`} {
		if !strings.Contains(first, want) {
			t.Errorf("log line %q lacks %s", first, want)
		}
	}
	if strings.Contains(out, "second line") || strings.Contains(out, "task completed") {
		t.Errorf("logged more than the first stderr line, or a completion at info:\n%s", out)
	}
	// The next interval says how many were left out.
	if !l.allow(time.Now().Add(failLogEvery + time.Millisecond)) {
		t.Fatal("a new interval allows no failure log")
	}
	if !strings.Contains(buf.String(), "failed tasks not logged") || !strings.Contains(buf.String(), "tasks=15") {
		t.Errorf("no summary of the 15 left out:\n%s", buf.String())
	}
}

func TestFirstLine(t *testing.T) {
	long := bytes.Repeat([]byte("é"), stderrLogBytes) // 2 bytes each: a cut falls mid-rune at odd lengths
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte("one\ntwo"), "one"},
		{[]byte{0xff, 'a'}, "\uFFFDa"},
		{append([]byte("x"), long...), "x" + strings.Repeat("é", (stderrLogBytes-1)/2) + "\uFFFD"},
	} {
		if got := firstLine(c.in); got != c.want {
			t.Errorf("firstLine(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
