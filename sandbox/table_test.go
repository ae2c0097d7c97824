package sandbox

import (
	"context"
	"strings"
	"testing"

	"faas/samples"
	"faas/task"
)

// TestTablesInMemoryLimit: tables count against memory_mb, at validation for their declared
// sizes and at run time for table.grow, and tables and memory share one budget.
func TestTablesInMemoryLimit(t *testing.T) {
	s := sharedSandbox(t)
	ctx := context.Background()

	_, err := s.Validate(ctx, testdata(t, "table_memory.wasm"), task.Limits{})
	if err == nil || !strings.Contains(err.Error(), "9000000 table elements") || !strings.Contains(err.Error(), "memory_mb=64") {
		t.Errorf("a 69 MiB table under memory_mb=64: %v, want a refusal naming memory_mb", err)
	}
	// Registered under a larger limit, then run under the default: out_of_memory.
	if _, err := s.Validate(ctx, testdata(t, "table_memory.wasm"), task.Limits{MemoryMB: 128}); err != nil {
		t.Fatalf("a 69 MiB table under memory_mb=128: %v", err)
	}
	res, err := s.Run(ctx, load(t, s, testdata(t, "table_memory.wasm")), "m", nil, task.Limits{})
	check(t, res, err, outcome{kind: task.KindOutOfMemory})

	for _, c := range []struct {
		name string
		wasm []byte
		mb   int64
		want outcome
	}{
		{"grow within the budget", testdata(t, "table_budget.wasm"), 16, outcome{}},
		{"the same under 8 MiB", testdata(t, "table_budget.wasm"), 8, outcome{kind: task.KindOutOfMemory}},
		{"memory after a big table", testdata(t, "table_then_memory.wasm"), 16, outcome{kind: task.KindOutOfMemory}},
		{"table.grow of 2^31-1", samples.Hostile["table_grow_max"], 64, outcome{kind: task.KindOutOfMemory}},
		{"table.grow loop", samples.Hostile["table_grow_loop"], 64, outcome{kind: task.KindOutOfMemory}},
		{"table.grow loop, 1 GiB", samples.Hostile["table_grow_loop"], 1024, outcome{kind: task.KindOutOfMemory}},
	} {
		t.Run(c.name, func(t *testing.T) {
			lim := task.Limits{MemoryMB: c.mb, TimeoutMs: 10_000}
			if _, err := s.Validate(ctx, c.wasm, lim); err != nil {
				t.Fatal(err)
			}
			res, err := s.Run(ctx, load(t, s, c.wasm), c.name, nil, lim)
			check(t, res, err, c.want)
			if c.want.kind != "" && !strings.Contains(res.Failure.Message, "memory") {
				t.Errorf("message %q does not name the memory limit", res.Failure.Message)
			}
		})
	}

	for _, name := range []string{"table_2gib", "tables_1gib"} {
		_, err := s.Validate(ctx, samples.Hostile[name], task.Limits{MemoryMB: 64})
		if err == nil || !strings.Contains(err.Error(), "table size limit") {
			t.Errorf("%s: %v, want a refusal naming the table size limit", name, err)
		}
	}
}

// TestGrowInstrumentation: table.grow becomes a call to an appended helper; the module
// exports the budget; a module exporting the reserved name itself is refused.
func TestGrowInstrumentation(t *testing.T) {
	wasm := samples.Hostile["table_grow_loop"]
	f, out, err := parseWasm(wasm, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.grows) != 1 {
		t.Fatalf("grows %v", f.grows)
	}
	g, _, err := parseWasm(out, false)
	if err != nil {
		t.Fatalf("instrumented module: %v", err)
	}
	if !g.reserved || g.funcs != f.funcs+1 {
		t.Errorf("instrumented: reserved %v, %d functions, want %d", g.reserved, g.funcs, f.funcs+1)
	}
	s := sharedSandbox(t)
	if _, err := s.Validate(context.Background(), out, task.Limits{}); err == nil || !strings.Contains(err.Error(), budgetExport) {
		t.Errorf("a module exporting %s: %v, want a refusal", budgetExport, err)
	}
}
