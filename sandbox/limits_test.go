package sandbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"faas/samples"
	"faas/task"
)

// section encodes one section: id, size, contents.
func section(id byte, contents ...byte) []byte {
	return append(append([]byte{id}, appendULEB(nil, uint64(len(contents)))...), contents...)
}

// module assembles a module of sections after the header.
func module(sections ...[]byte) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		out = append(out, s...)
	}
	return out
}

// withBody is a module with one type () -> (), one function of body (locals and code, without
// the size prefix), exported as _start.
func withBody(body []byte) []byte {
	code := appendULEB([]byte{1}, uint64(len(body)))
	return module(
		section(secType, 1, 0x60, 0, 0),
		section(secFunction, 1, 0),
		section(secExport, 1, 6, '_', 's', 't', 'a', 'r', 't', 0, 0),
		section(secCode, append(code, body...)...),
	)
}

// nested is a body of depth nested empty blocks.
func nested(depth int) []byte {
	b := []byte{0}
	for i := 0; i < depth; i++ {
		b = append(b, 0x02, 0x40)
	}
	for i := 0; i < depth; i++ {
		b = append(b, 0x0b)
	}
	return append(b, 0x0b)
}

func count(id byte, n uint64, entry ...byte) []byte {
	c := appendULEB(nil, n)
	for i := uint64(0); i < n; i++ {
		c = append(c, entry...)
	}
	return section(id, c...)
}

// TestStructuralLimits builds a module over each limit and checks that Validate refuses it,
// before compiling, with a message naming the limit and the values.
func TestStructuralLimits(t *testing.T) {
	brTable := func(n int) []byte {
		b := []byte{0, 0x02, 0x40, 0x41, 0, 0x0e}
		b = appendULEB(b, uint64(n))
		for i := 0; i <= n; i++ {
			b = append(b, 0)
		}
		return append(b, 0x0b, 0x0b)
	}
	bigBody := make([]byte, 0, maxBodySize+8)
	bigBody = append(bigBody, 0)
	for len(bigBody) < maxBodySize+1 {
		bigBody = append(bigBody, 0x01) // nop
	}
	bigBody = append(bigBody, 0x0b)
	cases := []struct {
		name string
		wasm []byte
		want string
	}{
		{"locals 2^27", withBody([]byte{1, 0x80, 0x80, 0x80, 0x40, 0x7f, 0x0b}), "function 0 declares 134217728 locals; at most 50000"},
		{"locals in groups", withBody([]byte{2, 0xd0, 0x86, 0x03, 0x7f, 0x01, 0x7e, 0x0b}), "declares 50001 locals; at most 50000"},
		{"block chain 12 MB", withBody(nested(4_000_000)), "body of 12000002 bytes; at most 7654321"},
		{"nesting 1M", withBody(nested(1_000_000)), "function 0 nests blocks more than 1000 deep"},
		{"nesting 1001", withBody(nested(maxNesting)), "nests blocks more than 1000 deep"},
		{"blocks", withBody(append(append([]byte{0}, bytes.Repeat([]byte{0x02, 0x40, 0x0b}, maxBlocks+1)...), 0x0b)), "function 0 has more than 10000 blocks, loops and ifs"},
		{"br_table", withBody(brTable(maxBrTable + 1)), "br_table of 65521 targets; at most 65520"},
		{"body size", withBody(bigBody), "body of 7654323 bytes; at most 7654321"},
		{"globals", module(count(secGlobal, maxGlobals+1, 0x7f, 0, 0x41, 0, 0x0b)), "declares 100001 globals; at most 100000"},
		{"types", module(count(secType, maxTypes+1, 0x60, 0, 0)), "declares 1000001 types; at most 1000000"},
		{"params", module(section(secType, append(append([]byte{1, 0x60, 0xe9, 0x07}, make([]byte, 1001)...), 0)...)), "type 0 has 1001 parameters; at most 1000"},
		{"functions", module(count(secFunction, maxFunctions+1, 0)), "declares 1000001 functions; at most 1000000"},
		{"imports", module(count(secImport, maxImports+1, 0, 0, 0, 0)), "declares 100001 imports; at most 100000"},
		{"exports", module(count(secExport, maxExports+1, 0, 0, 0)), "declares 100001 exports; at most 100000"},
		{"data", module(count(secData, maxDataSegments+1, 1, 0)), "declares 100001 data segments; at most 100000"},
		{"elements", module(count(secElement, maxElemSegments+1, 1, 0, 0)), "declares 100001 element segments; at most 100000"},
		{"tables", module(count(secTable, maxTables+1, 0x70, 0, 0)), "declares 17 tables; at most 16"},
		{"table size", module(section(secTable, 1, 0x70, 0, 0x80, 0x80, 0x80, 0x80, 0x01)), "table 0 starts with 268435456 elements; at most 10000000"},
	}
	s := sharedSandbox(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Validate(context.Background(), c.wasm, task.Limits{})
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "structural limit") {
				t.Fatalf("got %v, want a refusal containing %q", err, c.want)
			}
		})
	}
	// One level less than the limit passes the scan.
	if _, _, err := parseWasm(withBody(nested(maxNesting-1)), true); err != nil {
		t.Fatalf("nesting %d: %v", maxNesting-1, err)
	}
}

// TestSamplesWithinLimits: every committed sample and the toolchains' outputs pass the scan.
func TestSamplesWithinLimits(t *testing.T) {
	all := map[string][]byte{"double_go": samples.DoubleGo, "double_as": samples.DoubleAS}
	for n, b := range samples.Good() {
		all[n] = b
	}
	for n, b := range samples.Hostile {
		if samples.HostileKind[n] != "" || n == "bad_import" {
			all["hostile/"+n] = b
		}
	}
	for n, b := range all {
		if _, _, err := parseWasm(b, true); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// TestSpecSuiteWithinLimits: every module of the WebAssembly spec suite (as wazero's tests
// carry it) that wazero compiles passes the scan, and its instrumented form compiles too.
func TestSpecSuiteWithinLimits(t *testing.T) {
	gomodcache := os.Getenv("GOMODCACHE")
	if gomodcache == "" {
		gomodcache = filepath.Join(os.Getenv("HOME"), "go", "pkg", "mod")
	}
	files, _ := filepath.Glob(filepath.Join(gomodcache, "github.com/tetratelabs/wazero@v1.12.0/internal/integration_test/spectest/v2/testdata/*.wasm"))
	if len(files) == 0 {
		t.Skip("wazero's spec suite is not in the module cache")
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	var compiled int
	for _, path := range files {
		wasm, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			continue // invalid on purpose
		}
		_ = c.Close(ctx)
		compiled++
		_, out, err := parseWasm(wasm, true)
		if err != nil {
			t.Errorf("%s: wazero compiles it, the scan refuses it: %v", filepath.Base(path), err)
			continue
		}
		c, err = rt.CompileModule(ctx, out)
		if err != nil {
			t.Errorf("%s: instrumented form does not compile: %v", filepath.Base(path), err)
			continue
		}
		_ = c.Close(ctx)
	}
	t.Logf("%d of %d spec modules compile, all within the limits", compiled, len(files))
}
