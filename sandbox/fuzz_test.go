package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

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
		// (plus one helper per table that table.grow names, tablegrow.go, and $fill's
		// functions when table 0 is lazy, lazytable.go)
		want := f1.funcs + len(f1.grows)
		if f1.lazy != nil {
			want += int(f1.lazy.funcs())
		}
		if f2, _, err := parseWasm(out, false); err != nil || f2.funcs != want {
			t.Fatalf("instrumented module: %v, %d functions, want %d", err, f2.funcs, want)
		}
	})
}

// FuzzInstrument feeds function bodies to the decoder and the instrumentation: whatever body
// wazero compiles (in a module of one function () -> (), with a memory and a table), the
// decoder must accept, and the instrumented module must compile too; whatever wazero refuses,
// the decoder may refuse or pass on. Seeds: below and testdata/fuzz/FuzzInstrument.
func FuzzInstrument(f *testing.F) {
	for _, body := range [][]byte{
		{0, 0x0b},
		{0, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b},       // loop br 0
		{0, 0x03, 0x7f, 0x41, 0x01, 0x0b, 0x1a, 0x0b}, // loop (result i32)
		{0, 0x41, 0x00, 0xfd, 0x00, 0x04, 0x00, 0xfd, 0x15, 0x03, 0x1a, 0x0b}, // v128.load, i8x16.extract_lane_s 3
		{0, 0xd2, 0x00, 0x1a, 0x10, 0x00, 0x0b},                               // ref.func 0, call 0
		{0, 0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0b, 0x00, 0x0b},       // memory.fill
		{0, 0xd0, 0x70, 0x41, 0x01, 0xfc, 0x0f, 0x00, 0x1a, 0x0b},             // table.grow
		{0, 0x12, 0x00, 0x0b},                                                 // return_call: refused
		{0, 0x41, 0x00, 0x11, 0x00, 0x00, 0x0b},                               // call_indirect: lazy in the reactor
		{0, 0x03, 0x40, 0x41, 0x00, 0x11, 0x00, 0x00, 0x0b, 0x0b},             // loop call_indirect: locals P and T
		{0, 0x41, 0x00, 0x25, 0x00, 0x1a, 0x41, 0x00, 0x11, 0x00, 0x00, 0x0b}, // table.get: eager after all
	} {
		f.Add(body)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	f.Cleanup(func() { _ = rt.Close(ctx) })
	if err := instantiateMeter(ctx, rt); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code := appendULEB([]byte{1}, uint64(len(body)))
		wasm := module(
			section(secType, 1, 0x60, 0, 0),
			section(secFunction, 1, 0),
			section(secTable, 1, 0x70, 0, 1),
			section(secMemory, 1, 0, 1),
			section(secExport, 1, 6, '_', 's', 't', 'a', 'r', 't', 0, 0),
			section(secCode, append(code, body...)...),
		)
		// The structural limits come first, as in the sandbox: they keep wazero from
		// allocating gigabytes (a body declaring 2^32 locals).
		_, out, perr := parseWasm(wasm, true)
		var le *limitError
		if errors.As(perr, &le) {
			return
		}
		c, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			return // invalid: the decoder may say so first or leave it to wazero
		}
		_ = c.Close(ctx)
		if perr != nil && strings.Contains(perr.Error(), "unsupported local type") {
			// wazero reads a few more local types than the sandbox does (0x63, ref null ht,
			// in a group of zero locals): a refusal on the safe side.
			return
		}
		if perr != nil {
			t.Fatalf("wazero compiles %x, the decoder refuses it: %v", body, perr)
		}
		c, err = rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("%x compiles, its instrumented form does not: %v", body, err)
		}
		_ = c.Close(ctx)
		// The same function as a reactor's run, table 0 filled by a segment: instrumented
		// with a lazy table unless the body touches the table otherwise (lazytable.go).
		reactor := module(
			section(secType, 1, 0x60, 0, 0),
			section(secFunction, 1, 0),
			section(secTable, 1, 0x70, 0, 1),
			section(secMemory, 1, 0, 1),
			section(secExport, 1, 3, 'r', 'u', 'n', 0, 0),
			section(secElement, 1, 0x00, 0x41, 0x00, 0x0b, 1, 0),
			section(secCode, append(code, body...)...),
		)
		if c, err = rt.CompileModule(ctx, reactor); err != nil {
			return
		}
		_ = c.Close(ctx)
		if _, out, err = parseWasm(reactor, true); err != nil {
			t.Fatalf("wazero compiles the reactor %x, the decoder refuses it: %v", body, err)
		}
		if c, err = rt.CompileModule(ctx, out); err != nil {
			t.Fatalf("the reactor %x compiles, its instrumented form does not: %v", body, err)
		}
		_ = c.Close(ctx)
	})
}
