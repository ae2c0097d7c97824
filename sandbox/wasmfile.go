package sandbox

import (
	"errors"
	"fmt"
)

// This file reads the parts of a Wasm binary the sandbox needs before wazero sees it
// (imports, declared memory, exports, the code) and writes the instrumented copy: every
// function entry and loop header metered (meter.go), every function index moved past the
// refill import (remap.go), every table.grow checked (tablegrow.go). See docs/RATIONALE.md,
// "Metered guest code".

const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secTable    = 4
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secElement  = 9
	secStart    = 8
	secCode     = 10
	secData     = 11
)

type wasmImport struct {
	module, name string
	kind         byte // 0 func, 1 table, 2 memory, 3 global, 4 tag
}

// wasmFile is what parseWasm learns about a module.
type wasmFile struct {
	imports   []wasmImport
	hasMemory bool // a memory is defined (not imported)
	memMin    uint64
	memMax    uint64
	memHasMax bool
	funcs     int  // function bodies in the code section
	loops     int  // loop instructions in them
	hasStart  bool // exports a function named _start (the command ABI)
	hasRun    bool // exports a function named run (the reactor ABI, snapshot.go)
	hasInit   bool // exports a function named _initialize (a reactor's pre-initialization)
	// userGlobals is the number of globals the module defines itself, before the metering's.
	userGlobals uint32
	// meter is set when instrumenting: every function index >= importFuncs moves up by one
	// (the refill import takes importFuncs), and check is the metering code (meter.go).
	meter bool
	check []byte
	// typeParams is each type's number of parameters, funcTypes each defined function's type.
	typeParams  []uint32
	funcTypes   []uint32
	entryInP    int // functions whose entry counts in their local P (meterBody)
	importFuncs int // imported functions: the index of the first body
	tables      []tableType

	types          uint32 // entries of each index space the helpers extend
	definedFuncs   uint32
	importCount    uint32
	importGlobals  uint32
	definedGlobals uint32
	exports        uint32
	// grows lists the tables some table.grow names, instrumented into a checked call (see
	// tablegrow.go); reserved is set when the module exports budgetExport already.
	grows    []uint32
	reserved bool
	// lazy is table 0's content when it is filled lazily (lazytable.go); noLazy turns that
	// off, and lazyBroken says the code reads or writes table 0 another way than call_indirect.
	lazy       *lazyTable
	noLazy     bool
	lazyBroken bool
}

// tableType is a table's element type and limits, imported or defined.
type tableType struct {
	ref     byte
	min     uint64
	max     uint64
	hasMax  bool
	defined bool
	imposed bool // its maximum is ours (tableCap), not the module's
}

// tableElems is the sum of the tables' minimum sizes.
func (f *wasmFile) tableElems() uint64 {
	var n uint64
	for _, t := range f.tables {
		n += t.min
	}
	return n
}

var errMalformed = errors.New("malformed")

// errUnsupported is an instruction the sandbox's decoder does not know: refused, never run
// unmetered.
var errUnsupported = errors.New("unsupported instruction")

type reader struct {
	b    []byte
	off  int
	base int // the offset of b in the module, for messages
}

func (r *reader) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", errMalformed, what, r.base+r.off)
}

// unknown refuses the instruction at b[at:], naming it and its offset in the module.
func (r *reader) unknown(at int, format string, args ...any) error {
	return fmt.Errorf("%w: %s at byte %d", errUnsupported, fmt.Sprintf(format, args...), r.base+at)
}

// sub returns a reader of the n bytes at r's position, which it skips.
func (r *reader) sub(n uint64) (*reader, error) {
	at := r.off
	b, err := r.bytes(n)
	if err != nil {
		return nil, err
	}
	return &reader{b: b, base: r.base + at}, nil
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.fail("unexpected end")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *reader) u32() (uint32, error) {
	v, err := r.uleb(5)
	return uint32(v), err
}

func (r *reader) uleb(maxBytes int) (uint64, error) {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, r.fail("integer too long")
}

func (r *reader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, r.fail("length past the end")
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(uint64(n))
	return string(b), err
}

// limits reads memory or table limits; memory64 limits are 64-bit.
func (r *reader) limits() (min, max uint64, hasMax bool, err error) {
	flags, err := r.byte()
	if err != nil {
		return
	}
	if flags > 7 {
		err = r.fail("bad limits flags")
		return
	}
	width := 5
	if flags&4 != 0 {
		width = 10
	}
	if min, err = r.uleb(width); err != nil {
		return
	}
	if flags&1 != 0 {
		hasMax = true
		max, err = r.uleb(width)
	}
	return
}

func appendULEB(dst []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			dst = append(dst, c|0x80)
			continue
		}
		return append(dst, c)
	}
}

// parseWasm reads wasm's sections and returns what it found and, when instrument is true, the
// instrumented copy of the module (metered, table.grow checked). It does not validate what it
// does not need: wazero's decoder does that afterwards, on the copy.
func parseWasm(wasm []byte, instrument bool) (*wasmFile, []byte, error) {
	f, out, err := parseWasmWith(wasm, instrument, false)
	if err == nil && f.lazyBroken { // the code touches table 0: fill it eagerly after all
		return parseWasmWith(wasm, instrument, true)
	}
	return f, out, err
}

func parseWasmWith(wasm []byte, instrument, noLazy bool) (*wasmFile, []byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, nil, errors.New("is not a WebAssembly binary (it does not start with \\0asm)")
	}
	if v := uint32(wasm[4]) | uint32(wasm[5])<<8 | uint32(wasm[6])<<16 | uint32(wasm[7])<<24; v != 1 {
		return nil, nil, fmt.Errorf("is a WebAssembly binary of version %#x (a component?); only core modules (version 1) are supported", v)
	}
	f := &wasmFile{meter: instrument, noLazy: noLazy}
	r := &reader{b: wasm, off: 8}
	var secs []wasmSection // when instrumenting: the sections to write, in order
	for r.off < len(wasm) {
		start := r.off
		id, err := r.byte()
		if err != nil {
			return nil, nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, nil, err
		}
		sr, err := r.sub(uint64(size))
		if err != nil {
			return nil, nil, err
		}
		body := sr.b
		contents := body
		switch id {
		case secType:
			f.types, err = f.readTypes(sr)
		case secFunction:
			err = f.readFunctions(sr)
		case secGlobal:
			contents, err = f.readGlobals(sr)
		case secElement:
			contents, err = f.readElements(sr)
		case secStart:
			contents, err = f.readStart(sr)
		case secCustom:
			contents, err = f.readCustom(sr)
		case secData:
			_, err = readCount(sr, maxDataSegments, "data segments")
		case secTable:
			contents, err = f.readTables(sr)
		case secImport:
			err = f.readImports(sr)
		case secMemory:
			err = f.readMemory(sr)
		case secExport:
			contents, err = f.readExports(sr)
		case secCode:
			contents, err = f.readCode(sr)
		}
		var le *limitError
		if errors.As(err, &le) {
			return nil, nil, err // it names what it refuses; where does not help
		}
		if err != nil {
			return nil, nil, fmt.Errorf("section %d at byte %d: %w", id, start, err)
		}
		if instrument && contents != nil {
			secs = append(secs, wasmSection{id: id, contents: contents})
		}
	}
	f.userGlobals = f.definedGlobals
	if !instrument {
		return f, nil, nil
	}
	secs = f.addMeter(secs)
	secs = f.addLazyHelpers(secs)
	secs = f.addGrowHelpers(secs)
	out := make([]byte, 0, len(wasm)+len(wasm)/16+64)
	out = append(out, wasm[:8]...)
	for _, sec := range secs {
		out = append(out, sec.id)
		out = appendULEB(out, uint64(len(sec.contents)))
		out = append(out, sec.contents...)
	}
	return f, out, nil
}

type wasmSection struct {
	id       byte
	contents []byte
}

// readCode walks the function bodies and, when instrumenting, returns the section's new
// contents: each body metered at its entry (after its local declarations) and at each loop
// header, its function indices remapped and its table.grow calls checked.
func (f *wasmFile) readCode(r *reader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if err := checkCount(n, maxFunctions, "function bodies"); err != nil {
		return nil, err
	}
	var out []byte
	if f.meter {
		f.check = f.checkCode()
		out = make([]byte, 0, len(r.b)+len(r.b)/4+int(n)*len(f.check)+8)
		out = appendULEB(out, uint64(n))
	}
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		fn := uint64(f.importFuncs) + uint64(i)
		if size > maxBodySize {
			return nil, overLimit("function %d has a body of %d bytes; at most %d (function body size limit)", fn, size, maxBodySize)
		}
		br, err := r.sub(uint64(size))
		if err != nil {
			return nil, err
		}
		groups, err := br.u32()
		if err != nil {
			return nil, err
		}
		var locals uint64
		for g := uint32(0); g < groups; g++ {
			count, err := br.u32()
			if err != nil {
				return nil, err
			}
			if locals += uint64(count); locals > maxLocals { // before the type: a bad type must not hide it
				return nil, overLimit("function %d declares %d locals; at most %d (locals per function limit)", fn, locals, maxLocals)
			}
			t, err := br.byte()
			if err != nil {
				return nil, err
			}
			switch t {
			case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f: // i32 i64 f32 f64 v128 funcref externref
			default:
				return nil, br.fail(fmt.Sprintf("unsupported local type %#x", t))
			}
		}
		head, code := br.b[:br.off], br.b[br.off:]
		edits, err := scanCode(code, fn, br.base+br.off)
		if err != nil {
			return nil, err
		}
		f.funcs++
		for _, e := range edits {
			if e.kind == editLoop {
				f.loops++
			}
		}
		if !f.meter {
			continue
		}
		body, err := f.meterBody(i, head, groups, code, edits, br)
		if err != nil {
			return nil, err
		}
		out = appendULEB(out, uint64(len(body)))
		out = append(out, body...)
	}
	if r.off != len(r.b) {
		return nil, r.fail("bytes after the last function body")
	}
	return out, nil
}
