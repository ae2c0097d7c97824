package sandbox

// This file walks the instructions of one function body, immediates included, to check the
// limits only an instruction-level scan can see: block nesting depth and br_table size. It is
// strict: an opcode it does not know refuses the module (wazero would refuse it too, later and
// at greater cost), and every read is bounds-checked by reader. Exception handling is not
// known: the sandbox's runtime does not enable it, so wazero refuses it anyway.

// scanCode walks code, a function body after its local declarations, and checks that it has
// at most maxBlocks blocks, loops and ifs, nests at most maxNesting deep, that no br_table lists more than maxBrTable targets, and that
// its last `end` is its last byte. fn is the function's index, for messages.
// It returns where the body uses table.grow.
func scanCode(code []byte, fn uint64) ([]growAt, error) {
	var grows []growAt
	r := &reader{b: code}
	depth := 1 // the function body is itself a block
	blocks := 0
	for r.off < len(r.b) {
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
		case op == 0x0b: // end
			if depth--; depth == 0 {
				if r.off != len(r.b) {
					return nil, r.fail("code after the function's final end")
				}
				return grows, nil
			}
		case op == 0x0e: // br_table: vec(label) label
			n, err := r.u32()
			if err != nil {
				return nil, err
			}
			if n > maxBrTable {
				return nil, overLimit("function %d has a br_table of %d targets; at most %d", fn, n, maxBrTable)
			}
			for i := uint32(0); i <= n; i++ {
				if _, err := r.u32(); err != nil {
					return nil, err
				}
			}
		case op == 0x1c: // select t*: vec(valtype)
			n, err := r.u32()
			if err != nil {
				return nil, err
			}
			if _, err := r.bytes(uint64(n)); err != nil {
				return nil, err
			}
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect: type, table
			if err := r.skipU32s(2); err != nil {
				return nil, err
			}
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
			at := r.off - 1
			sub, err := r.u32()
			if err != nil {
				return nil, err
			}
			if sub == 15 { // table.grow
				t, err := r.u32()
				if err != nil {
					return nil, err
				}
				grows = append(grows, growAt{at: at, end: r.off, table: t})
			} else if err := r.skipFC(sub); err != nil {
				return nil, err
			}
		case op == 0xfd:
			if err := r.skipSIMD(); err != nil {
				return nil, err
			}
		case op == 0xfe:
			if err := r.skipAtomic(); err != nil {
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
				r.off--
				return nil, r.fail("unknown opcode")
			}
		}
	}
	return nil, r.fail("function body without its final end")
}

// growAt is one table.grow in a body: code[at:end], growing table.
type growAt struct {
	at, end int
	table   uint32
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
	// br br_if call return_call local.* global.* table.get/set memory.size memory.grow ref.func
	for _, op := range []byte{0x0c, 0x0d, 0x10, 0x12,
		0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x3f, 0x40, 0xd2} {
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

// skipFC skips a 0xfc-prefixed instruction: saturating truncations, bulk memory and tables.
func (r *reader) skipFC(sub uint32) error {
	switch {
	case sub <= 7: // trunc_sat
		return nil
	case sub == 9 || sub == 13 || (sub >= 15 && sub <= 17): // data.drop elem.drop table.grow/size/fill
		return r.skipU32s(1)
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init/copy table.init/copy
		return r.skipU32s(2)
	case sub == 11: // memory.fill
		return r.skipU32s(1)
	}
	return r.fail("unknown 0xfc instruction")
}

// skipSIMD skips a 0xfd-prefixed (vector) instruction.
func (r *reader) skipSIMD() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
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
	case sub <= 0x113: // everything else, relaxed SIMD included, has no immediate
		return nil
	}
	return r.fail("unknown 0xfd instruction")
}

// skipAtomic skips a 0xfe-prefixed (threads) instruction.
func (r *reader) skipAtomic() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub == 3: // atomic.fence: one reserved byte
		_, err = r.byte()
		return err
	case sub <= 0x4e:
		return r.memarg()
	}
	return r.fail("unknown 0xfe instruction")
}
