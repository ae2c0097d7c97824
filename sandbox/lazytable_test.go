package sandbox

import (
	"context"
	"strings"
	"testing"

	"faas/samples"
	"faas/task"
)

// TestLazyTablePlan: which modules get a lazy table 0 and what it holds.
func TestLazyTablePlan(t *testing.T) {
	for _, c := range []struct {
		name   string
		wasm   []byte
		lazy   bool
		lo     uint32
		slots  int
		filled int // non-null slots
	}{
		{"go reactor", samples.DoubleGoReactor, true, 4096, 1657, 1657},
		{"go command", samples.DoubleGo, false, 0, 0, 0},
		{"wat reactor", testdata(t, "reactor_lazy_table.wasm"), true, 2, 9, 5},
		{"wat reactor with table.get", testdata(t, "reactor_eager_table.wasm"), false, 0, 0, 0},
	} {
		f, _, err := parseWasm(c.wasm, true)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if (f.lazy != nil) != c.lazy {
			t.Fatalf("%s: lazy %v, want %v", c.name, f.lazy != nil, c.lazy)
		}
		if !c.lazy {
			continue
		}
		filled := 0
		for _, s := range f.lazy.slots {
			if s != 0 {
				filled++
			}
		}
		if f.lazy.lo != c.lo || len(f.lazy.slots) != c.slots || filled != c.filled {
			t.Fatalf("%s: lo %d, %d slots, %d filled; want %d, %d, %d", c.name, f.lazy.lo, len(f.lazy.slots), filled, c.lo, c.slots, c.filled)
		}
	}
}

// TestLazyTableBehavesAsEager: every call_indirect of the lazy module ends as the same call
// in the eager one: the function a segment put in the slot (the later segment winning), a
// trap for a null slot, a slot of another type or a slot past the table.
func TestLazyTableBehavesAsEager(t *testing.T) {
	s := sharedSandbox(t)
	ctx := context.Background()
	lazy := load(t, s, testdata(t, "reactor_lazy_table.wasm"))
	eager := load(t, s, testdata(t, "reactor_eager_table.wasm"))
	for _, c := range []struct {
		input string
		want  outcome
	}{
		{"all", outcome{stdout: "124512"}}, // slots 2 3 4 8 2, then what _initialize saw
		{"2", outcome{stdout: "1"}},
		{"3", outcome{stdout: "2"}},
		{"4", outcome{stdout: "4"}}, // the second segment's
		{"8", outcome{stdout: "5"}},
		{"0", outcome{kind: task.KindTrap}},     // below every segment: null
		{"9", outcome{kind: task.KindTrap}},     // ref.null in a segment
		{"10", outcome{kind: task.KindTrap}},    // another type
		{"15", outcome{kind: task.KindTrap}},    // past every segment: null
		{"16", outcome{kind: task.KindTrap}},    // past the table
		{"99999", outcome{kind: task.KindTrap}}, // far past it
	} {
		for round := 0; round < 2; round++ { // the second in memory the first gave back
			var msgs []string
			for _, h := range []string{lazy, eager} {
				res, err := s.Run(ctx, h, "t", []byte(c.input), task.Limits{})
				check(t, res, err, c.want)
				if res.Failure != nil {
					msgs = append(msgs, res.Failure.Message)
				}
			}
			if len(msgs) == 2 && (msgs[0] != msgs[1] || !strings.Contains(msgs[0], "table") && !strings.Contains(msgs[0], "indirect")) {
				t.Errorf("input %q: lazy trap %q, eager %q", c.input, msgs[0], msgs[1])
			}
		}
	}
}
