package dispatch

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"time"

	"faas/task"
)

// heldTask is what the core remembers of a task it holds a lease on.
type heldTask struct {
	attempt  int
	function string // the function's name, for logs
}

// Failed tasks are logged at info level, at most failLogBurst in each failLogEvery: a
// hostile batch of failing tasks must not flood the log. The rest are counted and said in
// one line when the next interval starts. Every outcome is logged at debug level.
const (
	failLogEvery = time.Second
	failLogBurst = 10
	// stderrLogBytes bounds the stderr excerpt in a log line.
	stderrLogBytes = 200
)

// outcomeLog logs the outcomes the core records. Any goroutine may call finished.
type outcomeLog struct {
	log *slog.Logger

	mu         sync.Mutex
	window     time.Time // start of the current interval
	logged     int       // failures logged in it
	suppressed int       // failures not logged in it
}

func newOutcomeLog(log *slog.Logger) *outcomeLog { return &outcomeLog{log: log} }

func (l *outcomeLog) finished(o task.Outcome, function string) {
	if o.Failure == nil {
		l.log.Debug("task completed", "task_id", o.ID, "function", function, "attempt", o.Attempt,
			"worker", o.Worker, "duration", o.Duration)
		return
	}
	attrs := []any{"task_id", o.ID, "function", function, "attempt", o.Attempt, "worker", o.Worker,
		"kind", o.Failure.Kind, "message", o.Failure.Message, "stderr", firstLine(o.Stderr)}
	if !l.allow(time.Now()) {
		l.log.Debug("task failed", attrs...)
		return
	}
	l.log.Info("task failed", attrs...)
}

// allow reports whether one more failure may be logged at info level now, and says how many
// were not when an interval ends.
func (l *outcomeLog) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= failLogEvery {
		if l.suppressed > 0 {
			l.log.Info("failed tasks not logged (too many at once; see debug level or the task records)",
				"tasks", l.suppressed, "interval", failLogEvery)
		}
		l.window, l.logged, l.suppressed = now, 0, 0
	}
	if l.logged < failLogBurst {
		l.logged++
		return true
	}
	l.suppressed++
	return false
}

// firstLine is the first line of a function's stderr, at most stderrLogBytes, with invalid
// UTF-8 replaced; slog quotes it, so control characters cannot forge log lines.
func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > stderrLogBytes {
		b = b[:stderrLogBytes]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
