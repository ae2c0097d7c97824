package sandbox

// This file walks the instructions of one function body, immediates included. It is the
// one decoder of the sandbox: it checks the limits only an instruction-level scan can see
// (block nesting depth, br_table size) and finds every place the instrumentation rewrites
// (loop headers, function indices, table.grow). It is strict and complete for what the
// sandbox's runtime enables (wazero v1.12.0, api.CoreFeaturesV2: MVP, mutable globals, sign
// extension, saturating truncation, multi-value, bulk memory, reference types, SIMD): an
// opcode outside that set refuses the module, naming the opcode and its offset in the
// module, so nothing it cannot see through ever runs unmetered. Every read is bounds-checked
// by reader. Threads, tail calls, exception handling, typed function references and relaxed
// SIMD are refused: wazero would refuse them too under this configuration.

// edit is one place scanCode found that the instrumentation rewrites: code[at:end].
type edit struct {
	at, end int
	kind    byte
	idx     uint32 // editFunc: the function index; editGrow: the table
}

const (
	editLoop     = iota // a loop header: the check goes at `at` (after its block type); end == at
	editFunc            // a function index immediate of ref.func, remapped
	editCall            // a call: opcode at `at`, remapped; a call of an import is flushed before
	editGrow            // a table.grow (0xfc 15 table), turned into a call of its helper
	editExit            // a way out of the function (return, a branch to its label, its final end): flushed before `at`; end == at
	editIndirect        // a call_indirect through table idx: a lazy table's check goes at `at`; end == at
	editTableOp         // table.get, set, fill, copy or init: nothing rewritten, but a table cannot be lazy; end == at
)

// scanCode walks code, a function body after its local declarations, and checks that it has
// at most maxBlocks blocks, loops and ifs, nests at most maxNesting deep, that no br_table lists more than maxBrTable targets, and that
// its last `end` is its last byte. fn is the function's index, for messages; base is the
// offset of code in the module, for messages. It returns the places to rewrite, in order.
func scanCode(code []byte, fn uint64, base int) ([]edit, error) {
	var edits []edit
	r := &reader{b: code, base: base}
	depth := 1 // the function body is itself a block
	blocks := 0
	for r.off < len(r.b) {
		at := r.off
		op, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block loop if
			if _, err := r.uleb(5); err != nil { // block type: s33
				return nil, err
			}
			if blocks++; blocks > maxBlocks {
				return nil, overLimit("function %d has more than %d blocks, loops and ifs (blocks per function limit)", fn, maxBlocks)
			}
			if depth++; depth > maxNesting {
				return nil, overLimit("function %d nests blocks more than %d deep (block nesting limit)", fn, maxNesting)
			}
			if op == 0x03 {
				edits = append(edits, edit{at: r.off, end: r.off, kind: editLoop})
			}
		case op == 0x0b: // end
			if depth--; depth == 0 {
				if r.off != len(r.b) {
					return nil, r.fail("code after the function's final end")
				}
				return append(edits, edit{at: at, end: at, kind: editExit}), nil
			}
		case op == 0x0f: // return
			edits = append(edits, edit{at: at, end: at, kind: editExit})
		case op == 0x0c || op == 0x0d: // br, br_if: a label
			l, err := r.u32()
			if err != nil {
				return nil, err
			}
			if uint64(l) == uint64(depth-1) { // the function's own label: a return
				edits = append(edits, edit{at: at, end: at, kind: editExit})
			}
		case op == 0x0e: // br_table: vec(label) label
			n, err := r.u32()
			if err != nil {
				return nil, err
			}
			if n > maxBrTable {
				return nil, overLimit("function %d has a br_table of %d targets; at most %d", fn, n, maxBrTable)
			}
			exits := false
			for i := uint32(0); i <= n; i++ {
				l, err := r.u32()
				if err != nil {
					return nil, err
				}
				exits = exits || uint64(l) == uint64(depth-1)
			}
			if exits {
				edits = append(edits, edit{at: at, end: at, kind: editExit})
			}
		case op == 0x10: // call: a function index
			idx, err := r.u32()
			if err != nil {
				return nil, err
			}
			edits = append(edits, edit{at: at, end: r.off, kind: editCall, idx: idx})
		case op == 0xd2: // ref.func: a function index
			imm := r.off
			idx, err := r.u32()
			if err != nil {
				return nil, err
			}
			edits = append(edits, edit{at: imm, end: r.off, kind: editFunc, idx: idx})
		case op == 0x1c: // select t*: vec(valtype)
			n, err := r.u32()
			if err != nil {
				return nil, err
			}
			if _, err := r.bytes(uint64(n)); err != nil {
				return nil, err
			}
		case op == 0x11: // call_indirect: type, table
			if _, err := r.u32(); err != nil {
				return nil, err
			}
			t, err := r.u32()
			if err != nil {
				return nil, err
			}
			edits = append(edits, edit{at: at, end: at, kind: editIndirect, idx: t})
		case op == 0x25 || op == 0x26: // table.get, table.set
			if _, err := r.u32(); err != nil {
				return nil, err
			}
			edits = append(edits, edit{at: at, end: at, kind: editTableOp})
		case op >= 0x28 && op <= 0x3e: // loads and stores
			if err := r.memarg(); err != nil {
				return nil, err
			}
		case op == 0x41: // i32.const
			if _, err := r.uleb(5); err != nil {
				return nil, err
			}
		case op == 0x42: // i64.const
			if _, err := r.uleb(10); err != nil {
				return nil, err
			}
		case op == 0x43: // f32.const
			if _, err := r.bytes(4); err != nil {
				return nil, err
			}
		case op == 0x44: // f64.const
			if _, err := r.bytes(8); err != nil {
				return nil, err
			}
		case op == 0xd0: // ref.null: heap type
			if _, err := r.uleb(5); err != nil {
				return nil, err
			}
		case op == 0xfc:
			sub, err := r.u32()
			if err != nil {
				return nil, err
			}
			if sub == 15 { // table.grow
				t, err := r.u32()
				if err != nil {
					return nil, err
				}
				edits = append(edits, edit{at: at, end: r.off, kind: editGrow, idx: t})
			} else if err := r.skipFC(at, sub); err != nil {
				return nil, err
			} else if sub == 12 || sub == 14 || sub == 17 { // table.init, table.copy, table.fill
				edits = append(edits, edit{at: at, end: at, kind: editTableOp})
			}
		case op == 0xfd:
			if err := r.skipSIMD(at); err != nil {
				return nil, err
			}
		default:
			switch immediates[op] {
			case immNone:
			case immIndex:
				if _, err := r.u32(); err != nil {
					return nil, err
				}
			default:
				return nil, r.unknown(at, "opcode %#02x%s", op, opcodeHint(op))
			}
		}
	}
	return nil, r.fail("function body without its final end")
}

// opcodeHint names the proposal an opcode the sandbox refuses belongs to, when it is one.
func opcodeHint(op byte) string {
	switch {
	case op >= 0x06 && op <= 0x0a, op == 0x18, op == 0x19, op == 0x1f:
		return " (exception handling, which the sandbox does not enable)"
	case op == 0x12 || op == 0x13:
		return " (tail calls, which the sandbox does not enable)"
	case op == 0x14 || op == 0x15 || (op >= 0xd3 && op <= 0xd6):
		return " (typed function references, which the sandbox does not enable)"
	case op == 0xfe:
		return " (threads: atomic instructions, which the sandbox does not enable)"
	}
	return ""
}

const (
	immUnknown = iota
	immNone    // no immediate
	immIndex   // one u32 index
)

// immediates classifies the one-byte opcodes that scanCode does not handle itself.
var immediates = func() (t [256]byte) {
	for _, op := range []byte{0x00, 0x01, 0x05, 0x0f, 0x1a, 0x1b, 0xd1} {
		t[op] = immNone // unreachable nop else return drop select ref.is_null
	}
	for op := 0x45; op <= 0xc4; op++ { // numeric instructions
		t[op] = immNone
	}
	// local.* global.* table.get/set memory.size memory.grow
	for _, op := range []byte{0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x3f, 0x40} {
		t[op] = immIndex
	}
	return t
}()

func (r *reader) skipU32s(n int) error {
	for i := 0; i < n; i++ {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

// memarg is alignment (bit 6: a memory index follows) and a 64-bit-wide offset.
func (r *reader) memarg() error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	_, err = r.uleb(10)
	return err
}

// skipFC skips a 0xfc-prefixed instruction (at is its offset): saturating truncations, bulk
// memory and tables. table.grow (15) is scanCode's.
func (r *reader) skipFC(at int, sub uint32) error {
	switch {
	case sub <= 7: // trunc_sat
		return nil
	case sub == 9 || sub == 13 || sub == 16 || sub == 17: // data.drop elem.drop table.size/fill
		return r.skipU32s(1)
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init/copy table.init/copy
		return r.skipU32s(2)
	case sub == 11: // memory.fill
		return r.skipU32s(1)
	}
	return r.unknown(at, "instruction 0xfc %d", sub)
}

// simdOps marks the 0xfd-prefixed (vector) instructions wazero v1.12.0 knows: all of 0..255
// but the holes the SIMD proposal left. Relaxed SIMD (0x100 and up) is not enabled.
var simdOps = func() (t [256]bool) {
	for i := range t {
		t[i] = true
	}
	for _, op := range []int{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb,
		0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee} {
		t[op] = false
	}
	return t
}()

// skipSIMD skips a 0xfd-prefixed (vector) instruction (at is its offset).
func (r *reader) skipSIMD(at int) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub > 0xff || !simdOps[sub]:
		return r.unknown(at, "vector instruction 0xfd %d", sub)
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		return r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		_, err = r.bytes(16)
		return err
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		_, err = r.byte()
		return err
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		if err := r.memarg(); err != nil {
			return err
		}
		_, err = r.byte()
		return err
	}
	return nil // every other vector instruction has no immediate
}
