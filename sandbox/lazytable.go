package sandbox

// Lazy tables (docs/RATIONALE.md, "Lazy tables"). wazero fills a table's active element
// segments at every instantiation, one constant expression evaluated and one function
// reference allocated per element: a Go reactor's 1,657-element table took half of each
// task's CPU, though a task calls a few dozen of those functions. So in a reactor whose
// table 0 is only ever read by call_indirect, the instrumentation leaves that table empty at
// instantiation and fills a slot the first time a call goes through it:
//
//   - table 0's active element segments become declarative ones (same functions, same
//     segment indices: they still declare what ref.func may name, and cost nothing);
//   - every call_indirect through table 0 is preceded by
//     `local.tee T  table.get 0  ref.is_null  if  local.get T  call $fill  end  local.get T`;
//   - $fill(i) sets slot i to what the segments would have put there (br_table dispatch to a
//     chunk function of lazyChunk slots, whose br_table jumps to `ref.func F  table.set 0`),
//     and leaves a slot no segment fills null.
//
// A call through a slot sees the same function as with the eager fill, and a slot left null
// traps as before. Anything else that reads or writes table 0's slots (table.get, table.set,
// table.fill, table.copy, table.init) would see the difference: a module using any of them
// keeps the eager fill, as does a table whose segments are not plain (an offset not an
// i32.const, an expression not ref.func or ref.null, a segment past the table's start size,
// more than maxLazySlots slots covered). Commands keep the eager fill: the runtime start of a
// command dwarfs it.

// lazyChunk is the slots one chunk function of $fill covers: a function of at most this
// many blocks compiles quickly (wazero's compile time grows faster than linearly with blocks).
const lazyChunk = 256

// maxLazySlots bounds the slots a lazy table covers, so that $fill's dispatch stays small.
const maxLazySlots = 1 << 16

// lazyTable is table 0's content as its active element segments leave it.
type lazyTable struct {
	lo    uint32   // the first slot a segment fills
	slots []uint32 // per slot from lo: 1 + the (remapped) index of its function; 0 for null
}

// funcs is the number of functions $fill takes: its dispatch and one per chunk.
func (lt *lazyTable) funcs() uint32 {
	return 1 + (uint32(len(lt.slots))+lazyChunk-1)/lazyChunk
}

// planLazy reads the element section b and returns table 0's content when the table can be
// filled lazily, nil otherwise. The code, read later, may still rule it out (lazyBroken).
func (f *wasmFile) planLazy(b []byte) *lazyTable {
	if f.noLazy || !f.meter || !f.hasRun || f.hasStart || len(f.tables) == 0 ||
		!f.tables[0].defined || f.tables[0].ref != 0x70 {
		return nil
	}
	type segment struct {
		off  uint32
		refs []uint32
	}
	var segs []segment
	r := &reader{b: b}
	n, err := r.u32()
	if err != nil {
		return nil
	}
	lo, hi := uint64(1<<32), uint64(0)
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil || flags > 7 {
			return nil
		}
		active := flags&1 == 0
		var off uint32
		if active {
			if flags&2 != 0 {
				if t, err := r.u32(); err != nil || t != 0 {
					return nil
				}
			}
			if off, err = i32ConstExpr(r); err != nil {
				return nil
			}
		}
		if flags&3 != 0 {
			k, err := r.byte()
			if err != nil || (flags&4 == 0 && k != 0x00) || (flags&4 != 0 && k != 0x70) {
				return nil
			}
		}
		count, err := r.u32()
		if err != nil || (active && uint64(count) > uint64(len(r.b)-r.off)) {
			return nil
		}
		var refs []uint32
		if active {
			refs = make([]uint32, 0, count)
		}
		for j := uint32(0); j < count; j++ {
			var ref uint32
			switch {
			case flags&4 == 0:
				idx, err := r.u32()
				if err != nil {
					return nil
				}
				ref = f.remap(idx) + 1
			case active:
				if ref, err = f.refExpr(r); err != nil {
					return nil
				}
			default:
				if _, err := f.copyConstExpr(r, nil); err != nil {
					return nil
				}
			}
			if active {
				refs = append(refs, ref)
			}
		}
		if active && count > 0 {
			segs = append(segs, segment{off: off, refs: refs})
			lo, hi = min(lo, uint64(off)), max(hi, uint64(off)+uint64(count))
		}
	}
	if len(segs) == 0 || hi > f.tables[0].min || hi-lo > maxLazySlots {
		return nil
	}
	lt := &lazyTable{lo: uint32(lo), slots: make([]uint32, hi-lo)}
	for _, s := range segs { // in order: a later segment overwrites an earlier one
		copy(lt.slots[s.off-lt.lo:], s.refs)
	}
	return lt
}

// i32ConstExpr reads a constant expression that must be `i32.const v end`.
func i32ConstExpr(r *reader) (uint32, error) {
	if op, err := r.byte(); err != nil || op != 0x41 {
		return 0, errMalformed
	}
	v, err := r.sleb32()
	if err != nil {
		return 0, err
	}
	if end, err := r.byte(); err != nil || end != 0x0b {
		return 0, errMalformed
	}
	return uint32(v), nil
}

// refExpr reads an element expression that must be `ref.func x end` (1 + x remapped) or
// `ref.null func end` (0).
func (f *wasmFile) refExpr(r *reader) (uint32, error) {
	op, err := r.byte()
	if err != nil {
		return 0, err
	}
	var ref uint32
	switch op {
	case 0xd2:
		idx, err := r.u32()
		if err != nil {
			return 0, err
		}
		ref = f.remap(idx) + 1
	case 0xd0:
		if t, err := r.byte(); err != nil || t != 0x70 {
			return 0, errMalformed
		}
	default:
		return 0, errMalformed
	}
	if end, err := r.byte(); err != nil || end != 0x0b {
		return 0, errMalformed
	}
	return ref, nil
}

// sleb32 reads a signed LEB128 of at most 5 bytes.
func (r *reader) sleb32() (int32, error) {
	var v int64
	for i := 0; i < 5; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= int64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if c&0x40 != 0 {
				v |= -1 << (7 * (i + 1))
			}
			return int32(v), nil
		}
	}
	return 0, r.fail("integer too long")
}

// lazySegmentFlags is what an active segment of table 0 becomes: declarative, with the same
// entries (3: function indices, 7: expressions), and the byte its kind or type needs when the
// old flags had none (0: none needed).
func lazySegmentFlags(flags uint32) (uint32, byte) {
	switch flags {
	case 0:
		return 3, 0x00 // elemkind funcref
	case 4:
		return 7, 0x70 // reftype funcref
	case 2:
		return 3, 0
	default: // 6
		return 7, 0
	}
}

// fillIndex is the function index of $fill: the first after the module's own.
func (f *wasmFile) fillIndex() uint32 { return f.remap(uint32(f.importFuncs) + f.definedFuncs) }

// ensureCode is the check before a call_indirect through table 0, with T the function's
// scratch i32 local.
func (f *wasmFile) ensureCode(t uint64) []byte {
	lt := appendULEB(nil, t)
	c := append([]byte{0x22}, lt...)                  // local.tee T
	c = append(c, 0x25, 0x00, 0xd1, 0x04, 0x40, 0x20) // table.get 0  ref.is_null  if  local.get
	c = append(c, lt...)
	c = append(c, 0x10) // call $fill
	c = appendULEB(c, uint64(f.fillIndex()))
	c = append(c, 0x0b, 0x20) // end  local.get T
	return append(c, lt...)
}

// addLazyHelpers appends $fill: its type (i32) -> (), its dispatch and chunk functions.
// Run after addMeter and before addGrowHelpers, whose functions come after these.
func (f *wasmFile) addLazyHelpers(secs []wasmSection) []wasmSection {
	lt := f.lazy
	if lt == nil {
		return secs
	}
	ti := f.types
	secs = extend(secs, secType, uint64(f.types), 1, []byte{0x60, 1, 0x7f, 0})
	f.types++
	n := lt.funcs()
	var funcs, bodies []byte
	first := f.fillIndex()
	chunks := n - 1
	add := func(body []byte) {
		funcs = appendULEB(funcs, uint64(ti))
		bodies = appendULEB(bodies, uint64(len(body)))
		bodies = append(bodies, body...)
	}
	// The dispatch: chunk (i - lo) >> 8, or nothing.
	targets := make([]uint32, chunks)
	for k := range targets {
		targets[k] = uint32(k)
	}
	add(dispatchBody(lt.lo, lazyChunkShift, targets, chunks, func(k uint32) []byte {
		c := appendULEB([]byte{0x20, 0, 0x10}, uint64(first+1+k)) // local.get 0  call chunk k
		return append(c, 0x0f)                                    // return
	}))
	for k := uint32(0); k < chunks; k++ {
		from := k * lazyChunk
		slots := lt.slots[from:min(from+lazyChunk, uint32(len(lt.slots)))]
		arm := map[uint32]uint32{} // function (1+index) -> its arm
		var fns []uint32
		labels := make([]uint32, len(slots))
		for s, fn := range slots {
			if fn == 0 {
				labels[s] = ^uint32(0) // null: the default
				continue
			}
			a, ok := arm[fn]
			if !ok {
				a = uint32(len(fns))
				arm[fn] = a
				fns = append(fns, fn)
			}
			labels[s] = a
		}
		add(dispatchBody(lt.lo+from, 0, labels, uint32(len(fns)), func(a uint32) []byte {
			c := appendULEB([]byte{0x20, 0, 0xd2}, uint64(fns[a]-1)) // local.get 0  ref.func F
			return append(c, 0x26, 0x00, 0x0f)                       // table.set 0  return
		}))
	}
	secs = extend(secs, secFunction, uint64(f.definedFuncs), uint64(n), funcs)
	secs = extend(secs, secCode, uint64(f.definedFuncs), uint64(n), bodies)
	f.definedFuncs += n
	return secs
}

// lazyChunkShift is log2(lazyChunk).
const lazyChunkShift = 8

// dispatchBody is a function (param i32) with no locals that computes k = (i - base) >> shift
// and runs arm(labels[k]), or nothing when k is past labels or labels[k] is ^0; arms is the
// number of arms:
//
//	block $none  block $a(arms-1) ... block $a0
//	  local.get 0  i32.const base  i32.sub  [i32.const shift  i32.shr_u]  br_table ...
//	end arm(0)  end arm(1) ... end arm(arms-1)  end  end
func dispatchBody(base uint32, shift byte, labels []uint32, arms uint32, arm func(uint32) []byte) []byte {
	c := []byte{0} // no locals
	for i := uint32(0); i <= arms; i++ {
		c = append(c, 0x02, 0x40) // block
	}
	c = append(c, 0x20, 0, 0x41)
	c = appendSLEB(c, int64(int32(base)))
	c = append(c, 0x6b) // i32.sub
	if shift > 0 {
		c = append(c, 0x41, shift, 0x76) // i32.const shift  i32.shr_u
	}
	c = append(c, 0x0e)
	c = appendULEB(c, uint64(len(labels)))
	for _, l := range labels {
		if l == ^uint32(0) {
			l = arms
		}
		c = appendULEB(c, uint64(l))
	}
	c = appendULEB(c, uint64(arms)) // default: $none
	for a := uint32(0); a < arms; a++ {
		c = append(c, 0x0b)
		c = append(c, arm(a)...)
	}
	return append(c, 0x0b, 0x0b) // end $none, end of the function
}
