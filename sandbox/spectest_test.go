package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// TestSpecDifferential runs the WebAssembly spec suite's scripts (the JSON form wast2json
// makes, shipped with wazero v1.12.0 in the Go module cache) twice side by side: on each
// module as it is and on its instrumented form, each in a runtime configured as the
// sandbox's (compiler, CoreFeaturesV2). For every module wazero compiles, the instrumented one
// must be accepted by the decoder and compile, both must instantiate alike, and every
// assert_return, assert_trap, assert_exhaustion and action must give the same results (bit
// for bit) or the same trap on both. The expected values of the scripts are not looked at:
// wazero's own suite checks those; this checks that instrumenting changes nothing.
//
// Every script runs (~30 s with -race on 2 cores, so inside make test); with -short, a
// representative subset (~3 s).
func TestSpecDifferential(t *testing.T) {
	dir := filepath.Join(goModCache(), "github.com/tetratelabs/wazero@v1.12.0/internal/integration_test/spectest")
	scripts, _ := filepath.Glob(filepath.Join(dir, "v2/testdata/*.json"))
	spectest, err := os.ReadFile(filepath.Join(dir, "testdata/spectest.wasm"))
	if len(scripts) == 0 || err != nil {
		t.Skip("wazero's spec suite is not in the module cache")
	}
	full := !testing.Short()
	var total specCounts
	for _, path := range scripts {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		if !full && !specSubset[name] && !strings.HasPrefix(name, "simd_i32x4") {
			continue
		}
		c := runSpecScript(t, path, spectest)
		total.modules += c.modules
		total.skipped += c.skipped
		total.asserts += c.asserts
		total.capped += c.capped
		total.scripts++
	}
	t.Logf("spec differential (full=%v): %d scripts, %d modules compiled and instrumented (%d wazero refuses, skipped), %d assertions identical, %d table.grow past the sandbox's table cap (deliberate: ends the task where bare wazero answers -1)",
		full, total.scripts, total.modules, total.skipped, total.asserts, total.capped)
	if total.modules == 0 || total.asserts == 0 {
		t.Fatal("covered nothing")
	}
}

// specSubset is the scripts run always: control flow, calls and tables (where the
// instrumentation rewrites), every kind of value, and the instructions with immediates.
var specSubset = map[string]bool{
	"block": true, "br": true, "br_if": true, "br_table": true, "call": true, "call_indirect": true,
	"elem": true, "exports": true, "fac": true, "func": true, "global": true, "i32": true, "i64": true,
	"f64": true, "if": true, "left-to-right": true, "linking": true, "loop": true, "memory_grow": true,
	"ref_func": true, "return": true, "select": true, "start": true, "table_grow": true, "bulk": true,
	"unwind": true, "stack": true, "skip-stack-guard-page": true, "simd_const": true,
	"simd_lane": true, "simd_load": true, "conversions": true,
}

type specCounts struct{ scripts, modules, skipped, asserts, capped int }

type specCommand struct {
	Type     string `json:"type"`
	Line     int    `json:"line"`
	Name     string `json:"name"`
	Filename string `json:"filename"`
	As       string `json:"as"`
	Action   struct {
		Type   string      `json:"type"`
		Field  string      `json:"field"`
		Module string      `json:"module"`
		Args   []specValue `json:"args"`
	} `json:"action"`
}

type specValue struct {
	Type     string `json:"type"`
	LaneType string `json:"lane_type"`
	Value    any    `json:"value"`
}

// specSide is one of the two runtimes: the modules as they are, or instrumented.
type specSide struct {
	rt      wazero.Runtime
	named   map[string]api.Module
	last    api.Module
	instrum bool
}

func newSpecSide(t *testing.T, ctx context.Context, spectest []byte, instrument bool) *specSide {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig())
	if _, err := rt.InstantiateWithConfig(ctx, spectest, wazero.NewModuleConfig()); err != nil {
		t.Fatal(err)
	}
	// A small refill, so the scripts pass through the host function often.
	_, err := rt.NewHostModuleBuilder(meterModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) { s[0] = 97 }),
			nil, []api.ValueType{api.ValueTypeI64}).
		Export(meterFunc).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &specSide{rt: rt, named: map[string]api.Module{}, instrum: instrument}
}

func runSpecScript(t *testing.T, path string, spectest []byte) (c specCounts) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var script struct {
		Commands []specCommand `json:"commands"`
	}
	if err := json.Unmarshal(raw, &script); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	ctx := context.Background()
	orig, inst := newSpecSide(t, ctx, spectest, false), newSpecSide(t, ctx, spectest, true)
	defer orig.rt.Close(ctx)
	defer inst.rt.Close(ctx)
	base := filepath.Base(path)
	live := false   // the last module compiled: the assertions after it run
	capped := false // the last module has a table whose maximum is the sandbox's (tableCap)
	cmds := script.Commands
	for i := 0; i < len(cmds); i++ {
		cmd := cmds[i]
		where := fmt.Sprintf("%s:%d", base, cmd.Line)
		switch cmd.Type {
		case "module":
			wasm, err := os.ReadFile(filepath.Join(filepath.Dir(path), cmd.Filename))
			if err != nil {
				t.Fatal(err)
			}
			register := ""
			if i+1 < len(cmds) && cmds[i+1].Type == "register" {
				register = cmds[i+1].As
				i++
			}
			if cm, err := orig.rt.CompileModule(ctx, wasm); err != nil {
				live = false
				c.skipped++
				continue
			} else {
				_ = cm.Close(ctx)
			}
			f, out, err := parseWasm(wasm, true)
			if err != nil {
				t.Errorf("%s: wazero compiles the module, the decoder refuses it: %v", where, err)
				live = false
				continue
			}
			c.modules++
			capped = false
			for _, tb := range f.tables {
				capped = capped || (tb.imposed && len(f.grows) > 0)
			}
			mo, errO := orig.instantiate(ctx, wasm, register, cmd.Name, false)
			mi, errI := inst.instantiate(ctx, out, register, cmd.Name, len(f.grows) > 0)
			if (errO == nil) != (errI == nil) || (errO != nil && firstLine(errO.Error()) != firstLine(errI.Error())) {
				t.Errorf("%s: instantiation differs: %v / instrumented: %v", where, errO, errI)
			}
			live = mo != nil && mi != nil
		case "assert_return", "action", "assert_trap", "assert_exhaustion":
			if !live {
				continue
			}
			ro, eo := orig.act(ctx, cmd)
			ri, ei := inst.act(ctx, cmd)
			switch {
			case capped && eo == nil && fmt.Sprint(ro) == "[4294967295]" && ei != nil && firstLine(ei.Error()) == "wasm error: unreachable":
				c.capped++ // tablegrow.go: a grow past an imposed maximum ends the task
			case (eo == nil) != (ei == nil) || (eo != nil && firstLine(eo.Error()) != firstLine(ei.Error())):
				t.Errorf("%s %s %s: error %v / instrumented: %v", where, cmd.Type, cmd.Action.Field, eo, ei)
			case fmt.Sprint(ro) != fmt.Sprint(ri):
				t.Errorf("%s %s %s: results %v / instrumented: %v", where, cmd.Type, cmd.Action.Field, ro, ri)
			default:
				c.asserts++
			}
		}
	}
	return c
}

func (s *specSide) instantiate(ctx context.Context, wasm []byte, register, name string, budget bool) (api.Module, error) {
	m, err := s.rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(register))
	if err != nil {
		return nil, err
	}
	if budget { // what Run does: table.grow draws on a budget (tablegrow.go); give it plenty
		if g, ok := m.ExportedGlobal(budgetExport).(api.MutableGlobal); ok {
			g.Set(1 << 40)
		}
	}
	if name != "" {
		s.named[name] = m
	}
	s.last = m
	return m, nil
}

func (s *specSide) act(ctx context.Context, cmd specCommand) ([]uint64, error) {
	m := s.last
	if cmd.Action.Module != "" {
		m = s.named[cmd.Action.Module]
	}
	if m == nil {
		return nil, fmt.Errorf("no module %q", cmd.Action.Module)
	}
	if cmd.Action.Type == "get" {
		g := m.ExportedGlobal(cmd.Action.Field)
		if g == nil {
			return nil, fmt.Errorf("no global %q", cmd.Action.Field)
		}
		return []uint64{g.Get()}, nil
	}
	fn := m.ExportedFunction(cmd.Action.Field)
	if fn == nil {
		return nil, fmt.Errorf("no function %q", cmd.Action.Field)
	}
	var args []uint64
	for _, a := range cmd.Action.Args {
		args = append(args, specArg(a)...)
	}
	return fn.Call(ctx, args...)
}

// specArg encodes one argument of a script as wazero's stack values.
func specArg(v specValue) []uint64 {
	switch v.Type {
	case "v128":
		lanes, _ := v.Value.([]any)
		bits := map[string]uint{"i8": 8, "i16": 16, "i32": 32, "f32": 32, "i64": 64, "f64": 64}[v.LaneType]
		var lo, hi uint64
		for i, l := range lanes {
			x := parseSpecUint(fmt.Sprint(l), bits)
			pos := uint(i) * bits
			if pos < 64 {
				lo |= x << pos
			} else {
				hi |= x << (pos - 64)
			}
		}
		return []uint64{lo, hi}
	case "externref":
		if s, _ := v.Value.(string); s != "" && s != "null" {
			n, _ := strconv.ParseUint(s, 10, 64)
			return []uint64{n + 1} // wazero's externref 0 is null
		}
		return []uint64{0}
	case "funcref":
		return []uint64{0}
	}
	return []uint64{parseSpecUint(fmt.Sprint(v.Value), 64)}
}

// parseSpecUint reads a lane or value as wast2json writes it: the unsigned decimal of its
// bits, or "nan:canonical"/"nan:arithmetic" (never in arguments).
func parseSpecUint(s string, bits uint) uint64 {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return math.MaxUint64
	}
	if n.Sign() < 0 {
		n.Add(n, new(big.Int).Lsh(big.NewInt(1), bits))
	}
	return n.Uint64() & (math.MaxUint64 >> (64 - bits))
}

func goModCache() string {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = filepath.Join(os.Getenv("HOME"), "go")
	}
	return filepath.Join(gopath, "pkg", "mod")
}
