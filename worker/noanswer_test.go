package worker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"faas/protocol"
)

// TestNoAnswerBackoff: unanswered, a worker warns at 5 s, then 10 s, 20 s, 40 s... later (at
// most every 5 minutes), starts over once registered, and gives up at ConnectTimeout.
func TestNoAnswerBackoff(t *testing.T) {
	var logs bytes.Buffer
	w := &worker{cfg: Config{Mode: protocol.ModePush, Endpoint: "tcp://127.0.0.1:1"},
		log: slog.New(slog.NewTextHandler(&logs, nil))}
	t0 := time.Unix(1_000_000, 0)
	var warnedAt []time.Duration
	for s := time.Duration(0); s <= 2*time.Hour; s += time.Second {
		before := strings.Count(logs.String(), "no answer")
		w.checkAnswered(t0.Add(s))
		if strings.Count(logs.String(), "no answer") > before {
			warnedAt = append(warnedAt, s)
		}
	}
	want := []time.Duration{5, 15, 35, 75, 155, 315, 615, 915}
	for i, s := range want {
		if i >= len(warnedAt) || warnedAt[i] != s*time.Second {
			t.Fatalf("warnings at %v; want them starting at %v s", warnedAt, want)
		}
	}
	for i := len(want); i < len(warnedAt); i++ {
		if gap := warnedAt[i] - warnedAt[i-1]; gap != noAnswerMaxGap {
			t.Fatalf("gap %v after %v; want %v", gap, warnedAt[i-1], noAnswerMaxGap)
		}
	}
	if w.fatal != nil {
		t.Fatalf("gave up without a ConnectTimeout: %v", w.fatal)
	}

	// Registered: the clock starts over when the dispatcher goes silent again.
	w.registered = true
	w.checkAnswered(t0)
	w.registered = false
	w.cfg.ConnectTimeout = 3 * time.Second
	t1 := t0.Add(3 * time.Hour)
	for s := time.Duration(0); s < 3*time.Second; s += 500 * time.Millisecond {
		w.checkAnswered(t1.Add(s))
		if w.fatal != nil {
			t.Fatalf("gave up after %v of a 3s timeout", s)
		}
	}
	w.checkAnswered(t1.Add(3 * time.Second))
	if !errors.Is(w.fatal, ErrNoDispatcher) || !strings.Contains(w.fatal.Error(), "tcp://127.0.0.1:1") {
		t.Fatalf("fatal = %v", w.fatal)
	}
}
