package dispatch

import (
	"bytes"
	"testing"

	"faas/protocol"
	"faas/task"
)

func TestBadOutcome(t *testing.T) {
	lim := task.Limits{StdoutBytes: 64}
	ref := task.Ref{ID: "t", Attempt: 1}
	cases := []struct {
		name string
		o    task.Outcome
		bad  bool
	}{
		{"result within stdout_bytes", task.Outcome{Ref: ref, Stdout: make([]byte, 64)}, false},
		{"result over stdout_bytes", task.Outcome{Ref: ref, Stdout: make([]byte, 65)}, true},
		{"stderr over the cap", task.Outcome{Ref: ref, Stderr: make([]byte, stderrCap+1)}, true},
		{"known failure kind", task.Outcome{Ref: ref, Failure: &task.Failure{Kind: task.KindTimeout}}, false},
		{"unknown failure kind", task.Outcome{Ref: ref, Failure: &task.Failure{Kind: "pwned"}}, true},
		{"failure message too long", task.Outcome{Ref: ref, Failure: &task.Failure{Kind: task.KindTrap, Message: string(bytes.Repeat([]byte("m"), messageCap+1))}}, true},
	}
	for _, c := range cases {
		if got := badOutcome(c.o, lim) != ""; got != c.bad {
			t.Errorf("%s: refused = %v, want %v", c.name, got, c.bad)
		}
	}
	// Zero limits are the defaults (4 MiB of stdout).
	if why := badOutcome(task.Outcome{Ref: ref, Stdout: make([]byte, 1<<20)}, task.Limits{}); why != "" {
		t.Errorf("1 MiB under default limits refused: %s", why)
	}
}

func TestFitSplitsBySize(t *testing.T) {
	big := task.Task{ID: "a", Input: make([]byte, 40<<20)}
	ts := []task.Task{big, big, big}
	if n := fit(ts); n != 1 {
		t.Fatalf("fit of three 40 MiB inputs = %d, want 1 per message", n)
	}
	small := []task.Task{{ID: "a", Input: []byte("x")}, {ID: "b"}}
	if n := fit(small); n != 2 {
		t.Fatalf("fit of two small tasks = %d", n)
	}
}

func TestControlRoute(t *testing.T) {
	got := controlRoute([]byte{protocol.RouteRequest, 'a', 'b'})
	if string(got) != string([]byte{protocol.RouteControl, 'a', 'b'}) {
		t.Fatalf("controlRoute = %q", got)
	}
	for _, r := range [][]byte{nil, {protocol.RouteRequest}, {0, 1, 2, 3, 4}, []byte("dabc")} {
		if controlRoute(r) != nil {
			t.Errorf("controlRoute(%q) is not nil", r)
		}
	}
	if via("k", []byte("d1")) == via("k", []byte("d2")) || via("k1", []byte("d")) == via("k2", []byte("d")) {
		t.Fatal("via does not tell connections apart")
	}
}
