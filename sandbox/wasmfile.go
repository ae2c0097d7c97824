package sandbox

import (
	"errors"
	"fmt"
)

// This file reads the few parts of a Wasm binary the sandbox needs before wazero sees it
// (imports, declared memory, exports) and instruments the code section: every function body
// is made to begin with an empty `loop end`. wazero checks for a closed module (a deadline
// passed, with WithCloseOnContextDone) only at loop headers, so without this a loop-free call
// tree runs unchecked; with it every function entry is a check point. See docs/RATIONALE.md.

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
	secCode     = 10
	secData     = 11
)

// entryCheck is `loop (empty block type) end`: a loop header with nothing in it.
var entryCheck = []byte{0x03, 0x40, 0x0b}

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
	funcs     int // function bodies in the code section
	// loopAtEntry counts bodies left as they are: they reach a loop header before any call or
	// branch, so wazero already checks there.
	loopAtEntry int
	hasStart    bool // exports a function named _start
	importFuncs int  // imported functions: the index of the first body
	tables      []tableType

	types          uint32 // entries of each index space the helpers extend
	definedFuncs   uint32
	importGlobals  uint32
	definedGlobals uint32
	exports        uint32
	// grows lists the tables some table.grow names, instrumented into a checked call (see
	// tablegrow.go); reserved is set when the module exports budgetExport already.
	grows    []uint32
	reserved bool
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

type reader struct {
	b   []byte
	off int
}

func (r *reader) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", errMalformed, what, r.off)
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

// parseWasm reads wasm's sections and returns what it found and, when instrument is true, a
// copy of the module whose every function body begins with entryCheck. It does not validate
// what it does not need: wazero's decoder does that afterwards.
func parseWasm(wasm []byte, instrument bool) (*wasmFile, []byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, nil, errors.New("is not a WebAssembly binary (it does not start with \\0asm)")
	}
	if v := uint32(wasm[4]) | uint32(wasm[5])<<8 | uint32(wasm[6])<<16 | uint32(wasm[7])<<24; v != 1 {
		return nil, nil, fmt.Errorf("is a WebAssembly binary of version %#x (a component?); only core modules (version 1) are supported", v)
	}
	f := &wasmFile{}
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
		body, err := r.bytes(uint64(size))
		if err != nil {
			return nil, nil, err
		}
		sr := &reader{b: body}
		contents := body
		switch id {
		case secType:
			f.types, err = readTypes(sr)
		case secFunction:
			f.definedFuncs, err = readCount(sr, maxFunctions, "functions")
		case secGlobal:
			f.definedGlobals, err = readCount(sr, maxGlobals, "globals")
		case secElement:
			_, err = readCount(sr, maxElemSegments, "element segments")
		case secData:
			_, err = readCount(sr, maxDataSegments, "data segments")
		case secTable:
			contents, err = f.readTables(sr)
		case secImport:
			err = f.readImports(sr)
		case secMemory:
			err = f.readMemory(sr)
		case secExport:
			err = f.readExports(sr)
		case secCode:
			contents, err = f.readCode(sr, instrument)
		}
		var le *limitError
		if errors.As(err, &le) {
			return nil, nil, err // it names what it refuses; where does not help
		}
		if err != nil {
			return nil, nil, fmt.Errorf("section %d at byte %d: %w", id, start, err)
		}
		if instrument {
			secs = append(secs, wasmSection{id: id, contents: contents})
		}
	}
	if !instrument {
		return f, nil, nil
	}
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

// readCode walks the function bodies and, when instrument is true, returns the section's new
// contents with entryCheck inserted after each body's local declarations.
func (f *wasmFile) readCode(r *reader, instrument bool) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if err := checkCount(n, maxFunctions, "function bodies"); err != nil {
		return nil, err
	}
	var out []byte
	if instrument {
		out = make([]byte, 0, len(r.b)+int(n)*4+8)
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
		body, err := r.bytes(uint64(size))
		if err != nil {
			return nil, err
		}
		br := &reader{b: body}
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
			locals += uint64(count)
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
		if locals > maxLocals {
			return nil, overLimit("function %d declares %d locals; at most %d (locals per function limit)", fn, locals, maxLocals)
		}
		grows, err := scanCode(body[br.off:], fn)
		if err != nil {
			return nil, err
		}
		f.funcs++
		if !instrument {
			continue
		}
		head, code := body[:br.off], body[br.off:]
		if len(grows) > 0 && !f.reserved {
			code = f.rewriteGrows(code, grows)
		}
		if startsWithLoop(code) {
			f.loopAtEntry++
			out = appendULEB(out, uint64(len(head)+len(code)))
			out = append(append(out, head...), code...)
			continue
		}
		out = appendULEB(out, uint64(len(head)+len(entryCheck)+len(code)))
		out = append(out, head...)
		out = append(out, entryCheck...)
		out = append(out, code...)
	}
	if r.off != len(r.b) {
		return nil, r.fail("bytes after the last function body")
	}
	return out, nil
}

// startsWithLoop reports whether code (a function body after its locals) runs straight into a
// `loop` instruction: only instructions that neither branch nor call come before it (Go's
// wasm functions begin so: a stack-pointer prologue, then their dispatch loop). Such a body
// passes wazero's loop-header check before it can call anything, so it needs no entry check.
// Anything unexpected answers false: the body is then instrumented, which is always safe.
func startsWithLoop(code []byte) bool {
	r := &reader{b: code}
	for n := 0; n < 64; n++ {
		op, err := r.byte()
		if err != nil {
			return false
		}
		switch {
		case op == 0x03: // loop
			return true
		case op == 0x01 || op == 0x1a: // nop, drop
		case op == 0x02: // block: blocktype must be empty or one value type
			bt, err := r.byte()
			if err != nil || !(bt == 0x40 || (bt >= 0x7b && bt <= 0x7f)) {
				return false
			}
		case op >= 0x20 && op <= 0x24: // local.get/set/tee, global.get/set
			if _, err := r.u32(); err != nil {
				return false
			}
		case op >= 0x28 && op <= 0x3e: // loads and stores: align, offset
			if _, err := r.u32(); err != nil {
				return false
			}
			if _, err := r.uleb(10); err != nil {
				return false
			}
		case op == 0x41 || op == 0x42: // i32.const, i64.const (signed LEB)
			if _, err := r.uleb(10); err != nil {
				return false
			}
		case op >= 0x45 && op <= 0xc4: // numeric instructions without immediates
		default:
			return false
		}
	}
	return false
}
