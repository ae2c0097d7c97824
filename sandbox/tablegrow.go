package sandbox

// Tables live outside linear memory, so the memory allocator that holds a task to memory_mb
// never sees them: one table.grow of 2^31-1 elements asks wazero for 16 GiB. parseWasm gives
// every table a bounded maximum (tableCap), and here it also turns each table.grow into a call
// to a helper function it appends to the module, which charges the new elements against a
// budget of bytes kept in an exported global: Run sets that budget to what memory_mb leaves
// after the memory and the tables the module starts with, and the memory allocator draws on
// the same budget when linear memory grows. A grow the budget cannot pay for sets the budget
// to -1 and traps; Run reads the -1 and reports out_of_memory, like a memory.grow past the
// limit. Helpers are appended (types, functions, a global, an export) so no existing index
// moves and nothing else in the module needs rewriting.
//
// The budget starts at 0 until Run sets it, which is after instantiation: a start section
// (which runs during instantiation) cannot grow a table.

// budgetExport is the name under which the budget global is exported. A module exporting it
// itself is refused (Validate), so the name cannot be used to dodge the check.
const budgetExport = "faas:table_budget"

// budgetRefused is the budget's value once a grow was refused.
const budgetRefused = -1

// helperIndex is the function index of the helper for table t, allocating one on first use.
// The helpers come after the module's own functions, which the refill import moved up one.
func (f *wasmFile) helperIndex(t uint32) uint32 {
	first := f.fillIndex() // after $fill's functions, when table 0 is lazy (lazytable.go)
	if f.lazy != nil {
		first += f.lazy.funcs()
	}
	for i, g := range f.grows {
		if g == t {
			return first + uint32(i)
		}
	}
	f.grows = append(f.grows, t)
	return first + uint32(len(f.grows)-1)
}

// addGrowHelpers appends to secs what the helpers need: their types, functions and bodies, the
// budget global and its export. It changes nothing when no table.grow was rewritten.
func (f *wasmFile) addGrowHelpers(secs []wasmSection) []wasmSection {
	if len(f.grows) == 0 {
		return secs
	}
	budget := f.importGlobals + f.definedGlobals // addMeter counted the counter in already
	var funcs, bodies, types []byte
	typeOf := map[byte]uint32{} // helper type per table element type
	for _, t := range f.grows {
		ref := f.tables[t].ref
		ti, ok := typeOf[ref]
		if !ok {
			ti = f.types + uint32(len(typeOf))
			typeOf[ref] = ti
			types = append(types, 0x60, 2, ref, 0x7f, 1, 0x7f) // (ref, i32) -> i32
		}
		funcs = appendULEB(funcs, uint64(ti))
		body := growHelper(t, budget, f.tables[t].imposed)
		bodies = appendULEB(bodies, uint64(len(body)))
		bodies = append(bodies, body...)
	}
	n := uint64(len(f.grows))
	secs = extend(secs, secType, uint64(f.types), uint64(len(typeOf)), types)
	secs = extend(secs, secFunction, uint64(f.definedFuncs), n, funcs)
	secs = extend(secs, secGlobal, uint64(f.definedGlobals), 1, []byte{0x7e, 1, 0x42, 0, 0x0b}) // mut i64 = 0
	export := appendULEB(nil, uint64(len(budgetExport)))
	export = append(append(export, budgetExport...), 3) // a global
	export = appendULEB(export, uint64(budget))
	secs = extend(secs, secExport, uint64(f.exports), 1, export)
	return extend(secs, secCode, uint64(f.definedFuncs), n, bodies)
}

// growHelper is the body of table t's helper, with the budget global at index b:
//
//	(func (param $ref) (param $n i32) (result i32) (local $old i32)
//	  (if (i64.lt_s (global.get $b) (i64.mul (i64.extend_i32_u (local.get $n)) (i64.const 8)))
//	    (then (global.set $b (i64.const -1)) unreachable))
//	  (local.tee $old (table.grow $t (local.get $ref) (local.get $n)))
//	  (if (i32.ne (i32.const -1)) (then $b -= n*8) (else <when imposed: as above>))
//	  (local.get $old))
//
// A grow wazero refuses is refused by the table's maximum. When that maximum is ours
// (imposed: the module declared none, or more than tableCap allows), the refusal is ours too
// and ends the task like a refused budget; a maximum the module declared is its own business,
// and its grow answers -1 as the spec says.
func growHelper(t, b uint32, imposed bool) []byte {
	gb := appendULEB(nil, uint64(b))
	need := []byte{0x20, 1, 0xad, 0x42, tableElemBytes, 0x7e} // n as i64 * 8
	c := []byte{1, 1, 0x7f}                                   // one i32 local
	c = append(append(c, 0x23), gb...)
	c = append(c, need...)
	c = append(c, 0x53, 0x04, 0x40, 0x42, 0x7f, 0x24) // i64.lt_s if; i64.const -1 global.set
	c = append(c, gb...)
	c = append(c, 0x00, 0x0b)                 // unreachable end
	c = append(c, 0x20, 0, 0x20, 1, 0xfc, 15) // table.grow t
	c = appendULEB(c, uint64(t))
	c = append(c, 0x22, 2, 0x41, 0x7f, 0x47, 0x04, 0x40, 0x23) // local.tee, i32.ne -1, if, global.get
	c = append(c, gb...)
	c = append(c, need...)
	c = append(append(c, 0x7d, 0x24), gb...) // i64.sub global.set
	if imposed {
		c = append(c, 0x05, 0x42, 0x7f, 0x24) // else i64.const -1 global.set
		c = append(append(c, gb...), 0x00)    // unreachable
	}
	return append(c, 0x0b, 0x20, 2, 0x0b) // end, local.get $old, end
}

// sectionOrder is the place of each known section in a module; custom sections have none.
var sectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// extend appends n entries (add, already encoded) to the section id, whose count was old, or
// inserts the section in its place when the module has none.
func extend(secs []wasmSection, id byte, old, n uint64, add []byte) []wasmSection {
	for i, s := range secs {
		if s.id != id {
			continue
		}
		r := &reader{b: s.contents}
		_, _ = r.u32() // the count, read once already by parseWasm
		c := appendULEB(nil, old+n)
		c = append(c, s.contents[r.off:]...)
		secs[i].contents = append(c, add...)
		return secs
	}
	at := len(secs)
	for i, s := range secs {
		if o, ok := sectionOrder[s.id]; ok && o > sectionOrder[id] {
			at = i
			break
		}
	}
	c := append(appendULEB(nil, n), add...)
	return append(secs[:at], append([]wasmSection{{id: id, contents: c}}, secs[at:]...)...)
}
