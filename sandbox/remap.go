package sandbox

// The refill import (meter.go) is appended to the imports, so it takes function index
// importFuncs and every function the module defines moves up by one. No scheme avoids the
// shift: only an imported function can reach Go, and imported functions come first in the
// index space. So every place a function index can appear is rewritten: call and ref.func in
// code (code.go), exports and the start function, element segments, and ref.func in
// constant expressions (globals, elements). The "name" custom section's function names are
// remapped too, so traps keep naming the right function. Everything else that names a
// function index (call_indirect goes through tables) needs nothing.

// remap is the index in the instrumented module of function idx of the original.
func (f *wasmFile) remap(idx uint32) uint32 {
	if f.meter && idx >= uint32(f.importFuncs) {
		return idx + 1
	}
	return idx
}

// checkCode is the metering check (meter.go), for the counter global G and the refill
// function H:
//
//	global.get G  i64.const 1  i64.sub  global.set G
//	global.get G  i64.const 0  i64.lt_s
//	if  call H  global.set G  end
//
// Stack-neutral, so it fits anywhere a block may begin, loops with parameters included.
func (f *wasmFile) checkCode() []byte {
	g := appendULEB(nil, uint64(f.counterIndex()))
	c := append([]byte{0x23}, g...)
	c = append(append(append(c, 0x42, 0x01, 0x7d, 0x24), g...), 0x23)
	c = append(append(c, g...), 0x42, 0x00, 0x53, 0x04, 0x40, 0x10)
	c = appendULEB(c, uint64(f.importFuncs)) // the refill import
	c = append(append(c, 0x24), g...)
	return append(c, 0x0b)
}

// loopCheckCode is the check of a loop header in a function whose local p counts the
// iterations not yet charged to the counter (G, H as in checkCode):
//
//	local.get p  i64.const 1  i64.add  local.tee p  i64.const loopBatch  i64.ge_u
//	if  global.get G  local.get p  i64.sub  global.set G  i64.const 0  local.set p
//	    global.get G  i64.const 0  i64.lt_s  if  call H  global.set G  end
//	end
//
// So an iteration costs a few register instructions, and the counter in memory is touched
// once every loopBatch iterations.
func (f *wasmFile) loopCheckCode(p uint64) []byte {
	g := appendULEB(nil, uint64(f.counterIndex()))
	lp := appendULEB(nil, p)
	c := append([]byte{0x20}, lp...)
	c = append(append(c, 0x42, 0x01, 0x7c, 0x22), lp...)
	c = append(c, 0x42)
	c = appendSLEB(c, loopBatch)
	c = append(c, 0x5a, 0x04, 0x40)
	c = append(c, f.charge(g, lp)...)
	return append(c, f.refillIfNegative(g)...)
}

// flushCode charges what local p holds to the counter, before a way out of the function or a
// host call, and calls refill when that took the counter below zero (a loop whose every
// iteration calls the host would otherwise never reach a refill):
//
//	local.get p  i64.const 0  i64.ne
//	if  global.get G  local.get p  i64.sub  global.set G  i64.const 0  local.set p
//	    global.get G  i64.const 0  i64.lt_s  if  call H  global.set G  end
//	end
func (f *wasmFile) flushCode(p uint64) []byte {
	g := appendULEB(nil, uint64(f.counterIndex()))
	lp := appendULEB(nil, p)
	c := append([]byte{0x20}, lp...)
	c = append(c, 0x42, 0x00, 0x52, 0x04, 0x40)
	c = append(c, f.charge(g, lp)...)
	return append(c, f.refillIfNegative(g)...)
}

// refillIfNegative is `global.get G  i64.const 0  i64.lt_s  if  call H  global.set G  end  end`
// (the second end closes the caller's if).
func (f *wasmFile) refillIfNegative(g []byte) []byte {
	c := append([]byte{0x23}, g...)
	c = append(c, 0x42, 0x00, 0x53, 0x04, 0x40, 0x10)
	c = appendULEB(c, uint64(f.importFuncs))
	c = append(append(c, 0x24), g...)
	return append(c, 0x0b, 0x0b)
}

// charge is `global.get G  local.get p  i64.sub  global.set G  i64.const 0  local.set p`.
func (f *wasmFile) charge(g, lp []byte) []byte {
	c := append([]byte{0x23}, g...)
	c = append(append(c, 0x20), lp...)
	c = append(append(c, 0x7d, 0x24), g...)
	c = append(c, 0x42, 0x00, 0x21)
	return append(c, lp...)
}

// appendSLEB appends v as a signed LEB128.
func appendSLEB(dst []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

// counterIndex is the index of the counter global: the first one after the module's own.
func (f *wasmFile) counterIndex() uint32 { return f.importGlobals + f.definedGlobals }

// addMeter appends what metering needs: the refill function's type and import, the counter
// global (mut i64 = 0) and its export. Run before addGrowHelpers, which counts them in.
func (f *wasmFile) addMeter(secs []wasmSection) []wasmSection {
	secs = extend(secs, secType, uint64(f.types), 1, []byte{0x60, 0, 1, 0x7e}) // () -> i64
	im := appendULEB(nil, uint64(len(meterModule)))
	im = append(im, meterModule...)
	im = appendULEB(im, uint64(len(meterFunc)))
	im = append(append(im, meterFunc...), 0) // a function
	im = appendULEB(im, uint64(f.types))
	secs = extend(secs, secImport, uint64(f.importCount), 1, im)
	secs = extend(secs, secGlobal, uint64(f.definedGlobals), 1, []byte{0x7e, 1, 0x42, 0, 0x0b})
	ex := appendULEB(nil, uint64(len(meterExport)))
	ex = append(append(ex, meterExport...), 3) // a global
	ex = appendULEB(ex, uint64(f.counterIndex()))
	secs = extend(secs, secExport, uint64(f.exports), 1, ex)
	f.types++
	f.importCount++
	f.definedGlobals++
	f.exports++
	return secs
}

// readStart reads the start section and returns it remapped.
func (f *wasmFile) readStart(r *reader) ([]byte, error) {
	idx, err := r.u32()
	if err != nil {
		return nil, err
	}
	if r.off != len(r.b) {
		return nil, r.fail("bytes after the start function")
	}
	return appendULEB(nil, uint64(f.remap(idx))), nil
}

// readGlobals counts the globals and returns the section with ref.func remapped in their
// initial values.
func (f *wasmFile) readGlobals(r *reader) ([]byte, error) {
	n, err := readCount(r, maxGlobals, "globals")
	if err != nil {
		return nil, err
	}
	f.definedGlobals = n
	if !f.meter {
		return r.b, nil
	}
	out := appendULEB(make([]byte, 0, len(r.b)+8), uint64(n))
	for i := uint32(0); i < n; i++ {
		t, err := r.bytes(2) // value type, mutability
		if err != nil {
			return nil, err
		}
		if out, err = f.copyConstExpr(r, append(out, t...)); err != nil {
			return nil, err
		}
	}
	if r.off != len(r.b) {
		return nil, r.fail("bytes after the last global")
	}
	return out, nil
}

// readElements counts the element segments and returns them with every function index
// remapped. Segment flags (the spec's binary format): bit 0 passive or declarative, bit 1
// an explicit table (active) or declarative (passive), bit 2 expressions instead of indices.
func (f *wasmFile) readElements(r *reader) ([]byte, error) {
	n, err := readCount(r, maxElemSegments, "element segments")
	if err != nil {
		return nil, err
	}
	if !f.meter {
		return r.b, nil
	}
	f.lazy = f.planLazy(r.b)
	out := appendULEB(make([]byte, 0, len(r.b)+len(r.b)/8+8), uint64(n))
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		if flags > 7 {
			return nil, r.fail("unknown element segment flags")
		}
		// An active segment of a lazy table (all are table 0's) becomes declarative.
		lazy := f.lazy != nil && flags&1 == 0
		var kind byte
		if lazy {
			var lf uint32
			lf, kind = lazySegmentFlags(flags)
			out = appendULEB(out, uint64(lf))
		} else {
			out = appendULEB(out, uint64(flags))
		}
		if flags&1 == 0 { // active: [table] offset
			if flags&2 != 0 {
				t, err := r.u32()
				if err != nil {
					return nil, err
				}
				if !lazy {
					out = appendULEB(out, uint64(t))
				}
			}
			if lazy {
				_, err = f.copyConstExpr(r, nil)
			} else {
				out, err = f.copyConstExpr(r, out)
			}
			if err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 { // element kind (indices) or reference type (expressions)
			k, err := r.byte()
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		} else if lazy {
			out = append(out, kind)
		}
		count, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendULEB(out, uint64(count))
		for j := uint32(0); j < count; j++ {
			if flags&4 != 0 {
				out, err = f.copyConstExpr(r, out)
			} else {
				var idx uint32
				if idx, err = r.u32(); err == nil {
					out = appendULEB(out, uint64(f.remap(idx)))
				}
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if r.off != len(r.b) {
		return nil, r.fail("bytes after the last element segment")
	}
	return out, nil
}

// copyConstExpr appends the constant expression at r (up to and with its end) to out, with
// ref.func remapped. It knows what wazero accepts in one under CoreFeaturesV2.
func (f *wasmFile) copyConstExpr(r *reader, out []byte) ([]byte, error) {
	for {
		at := r.off
		op, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch op {
		case 0x0b: // end
			return append(out, op), nil
		case 0x41, 0xd0: // i32.const, ref.null
			_, err = r.uleb(5)
		case 0x42: // i64.const
			_, err = r.uleb(10)
		case 0x43:
			_, err = r.bytes(4)
		case 0x44:
			_, err = r.bytes(8)
		case 0x23: // global.get
			_, err = r.u32()
		case 0xd2: // ref.func
			var idx uint32
			if idx, err = r.u32(); err != nil {
				return nil, err
			}
			out = appendULEB(append(out, op), uint64(f.remap(idx)))
			continue
		case 0xfd: // v128.const
			var sub uint32
			if sub, err = r.u32(); err == nil {
				if sub != 12 {
					return nil, r.unknown(at, "instruction 0xfd %d in a constant expression", sub)
				}
				_, err = r.bytes(16)
			}
		default:
			return nil, r.unknown(at, "opcode %#02x in a constant expression", op)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r.b[at:r.off]...)
	}
}

// readCustom returns a custom section as it is, except the "name" section, whose function
// names and local names are remapped; its other subsections (labels, types...) are dropped
// rather than checked, and a name section that does not parse is dropped whole: names only
// serve stack traces.
func (f *wasmFile) readCustom(r *reader) ([]byte, error) {
	if !f.meter {
		return r.b, nil
	}
	name, err := r.name()
	if err != nil {
		return nil, err
	}
	if name != "name" {
		return r.b, nil
	}
	out, ok := f.remapNames(r, append([]byte(nil), r.b[:r.off]...))
	if !ok {
		return nil, nil // dropped
	}
	return out, nil
}

func (f *wasmFile) remapNames(r *reader, out []byte) ([]byte, bool) {
	for r.off < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return nil, false
		}
		size, err := r.u32()
		if err != nil {
			return nil, false
		}
		sr, err := r.sub(uint64(size))
		if err != nil {
			return nil, false
		}
		var sub []byte
		switch id {
		case 0: // module name
			sub = sr.b
		case 1, 2: // function names: vec(idx name); local names: vec(idx vec(idx name))
			n, err := sr.u32()
			if err != nil {
				return nil, false
			}
			sub = appendULEB(nil, uint64(n))
			for i := uint32(0); i < n; i++ {
				idx, err := sr.u32()
				if err != nil {
					return nil, false
				}
				at := sr.off
				if id == 1 {
					_, err = sr.name()
				} else {
					err = skipNameMap(sr)
				}
				if err != nil {
					return nil, false
				}
				sub = append(appendULEB(sub, uint64(f.remap(idx))), sr.b[at:sr.off]...)
			}
		default:
			continue
		}
		out = append(appendULEB(append(out, id), uint64(len(sub))), sub...)
	}
	return out, true
}

func skipNameMap(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if _, err := r.u32(); err != nil {
			return err
		}
		if _, err := r.name(); err != nil {
			return err
		}
	}
	return nil
}
