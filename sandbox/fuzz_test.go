package sandbox

import (
	"context"
	"errors"
	"testing"

	"faas/samples"
	"faas/task"
)

// FuzzValidate feeds random bytes and mutated modules to Validate: it must never panic, and
// must answer either a module it accepts or a *ValidationError. Seeds: the small samples
// (f.Add) and the files in testdata/fuzz/FuzzValidate.
func FuzzValidate(f *testing.F) {
	for _, b := range [][]byte{samples.Noop, samples.DoubleWAT, samples.DoubleAS,
		samples.Hostile["call_tree"], samples.Hostile["bad_import"], samples.Hostile["start_loop"],
		samples.Hostile["table_grow_max"], samples.Hostile["table_grow_loop"], samples.Hostile["tables_1gib"]} {
		f.Add(b)
	}
	ctx := context.Background()
	s, err := New(ctx, Config{MaxCompiled: 8})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close(ctx) })
	f.Fuzz(func(t *testing.T, wasm []byte) {
		info, err := s.Validate(ctx, wasm, task.Limits{MemoryMB: 16})
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidModule) || ve.Reason == "" {
				t.Fatalf("not a validation error: %v", err)
			}
			return
		}
		if info.Hash != Hash(wasm) {
			t.Fatalf("hash %s", info.Hash)
		}
		// Whatever it accepts, the instrumented form parses again with the same functions.
		f1, out, err := parseWasm(wasm, true)
		if err != nil {
			t.Fatalf("accepted, but the parser refuses it: %v", err)
		}
		// (plus one helper per table that table.grow names: see tablegrow.go)
		if f2, _, err := parseWasm(out, false); err != nil || f2.funcs != f1.funcs+len(f1.grows) {
			t.Fatalf("instrumented module: %v, %d functions, want %d", err, f2.funcs, f1.funcs+len(f1.grows))
		}
	})
}
