package sandbox

import "strings"

// Readers for the sections parseWasm reads: those it needs (imports, memory, exports, tables)
// and those it only checks against the structural limits (limits.go), leaving the rest of
// them to wazero's decoder.

// readCount reads a section's entry count and refuses more than max; the entries themselves
// are wazero's to decode.
func readCount(r *reader, max int, what string) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	return n, checkCount(n, max, what)
}

// readTypes checks the number of function types and the parameters and results of each, and
// keeps each type's number of parameters (the metering's local comes after them).
func (f *wasmFile) readTypes(r *reader) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	return n, f.checkTypes(r, n)
}

func (f *wasmFile) checkTypes(r *reader, n uint32) error {
	if err := checkCount(n, maxTypes, "types"); err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return r.fail("type is not a function type")
		}
		for _, side := range []struct {
			what string
			max  uint32
		}{{"parameters", maxTypeParams}, {"results", maxTypeResults}} {
			k, err := r.u32()
			if err != nil {
				return err
			}
			if k > side.max {
				return overLimit("type %d has %d %s; at most %d", i, k, side.what, side.max)
			}
			if side.what == "parameters" {
				f.typeParams = append(f.typeParams, k)
			}
			if _, err := r.bytes(uint64(k)); err != nil { // value types: one byte each
				return err
			}
		}
	}
	return nil
}

// readFunctions reads the function section: each defined function's type index.
func (f *wasmFile) readFunctions(r *reader) error {
	n, err := readCount(r, maxFunctions, "functions")
	if err != nil {
		return err
	}
	f.definedFuncs = n
	f.funcTypes = make([]uint32, 0, min(n, uint32(len(r.b))))
	for i := uint32(0); i < n; i++ {
		t, err := r.u32()
		if err != nil {
			return err
		}
		f.funcTypes = append(f.funcTypes, t)
	}
	return nil
}

// readTables reads the table section and returns it re-encoded with every table given a
// maximum (tableCap), so that no table.grow can reach a size the module did not declare it
// needs up front. Refused: more than maxTables tables in all, or a table starting above
// maxTableSize elements.
func (f *wasmFile) readTables(r *reader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if uint64(n)+uint64(len(f.tables)) > maxTables {
		return nil, overLimit("declares %d tables; at most %d", uint64(n)+uint64(len(f.tables)), maxTables)
	}
	for i := uint32(0); i < n; i++ {
		if err := f.readTable(r, true); err != nil {
			return nil, err
		}
	}
	if r.off != len(r.b) {
		return nil, r.fail("bytes after the last table")
	}
	if sum := f.tableElems(); sum > maxTableSize {
		return nil, overLimit("tables start with %d elements in all; at most %d (table size limit)", sum, maxTableSize)
	}
	share := (maxTableSize - f.tableElems()) / uint64(max(len(f.tables), 1))
	out := appendULEB(nil, uint64(n))
	for i, t := range f.tables {
		if !t.defined {
			continue
		}
		c := tableCap(t, share)
		f.tables[i].imposed = !t.hasMax || c != t.max
		out = append(out, t.ref, 0x01)
		out = appendULEB(out, t.min)
		out = appendULEB(out, c)
	}
	return out, nil
}

// readTable reads one table type (reference type, limits) and checks its size.
func (f *wasmFile) readTable(r *reader, defined bool) error {
	ref, err := r.byte()
	if err != nil {
		return err
	}
	if ref != 0x70 && ref != 0x6f { // funcref, externref
		return r.fail("unsupported table element type")
	}
	if r.off < len(r.b) && r.b[r.off] > 1 { // shared or 64-bit tables: not supported by wazero
		return r.fail("unsupported table limits")
	}
	min, max, hasMax, err := r.limits()
	if err != nil {
		return err
	}
	if min > maxTableSize {
		return overLimit("table %d starts with %d elements; at most %d (table size limit)", len(f.tables), min, maxTableSize)
	}
	if hasMax && max < min {
		return r.fail("table maximum below its minimum")
	}
	if len(f.tables) >= maxTables {
		return overLimit("declares more than %d tables", maxTables)
	}
	f.tables = append(f.tables, tableType{ref: ref, min: min, max: max, hasMax: hasMax, defined: defined})
	return nil
}

// tableCap is the maximum a table is given: its declared one, but never more than share
// elements above its minimum, share being an equal part of what maxTableSize leaves after
// every table's minimum. So all the tables together never hold more than maxTableSize
// elements (80 MB), whatever the module grows. A module run twice through parseWasm gets the
// same maxima again (the same minimums give the same share).
func tableCap(t tableType, share uint64) uint64 {
	if t.hasMax && t.max-t.min <= share {
		return t.max
	}
	return t.min + share
}

func (f *wasmFile) readImports(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	if err := checkCount(n, maxImports, "imports"); err != nil {
		return err
	}
	f.importCount = n
	for i := uint32(0); i < n; i++ {
		var im wasmImport
		if im.module, err = r.name(); err != nil {
			return err
		}
		if im.name, err = r.name(); err != nil {
			return err
		}
		if im.kind, err = r.byte(); err != nil {
			return err
		}
		switch im.kind {
		case 0: // func: type index
			_, err = r.u32()
			f.importFuncs++
		case 1: // table: reftype, limits
			err = f.readTable(r, false)
		case 2: // memory: limits
			_, _, _, err = r.limits()
		case 3: // global: valtype, mutability
			if _, err = r.byte(); err == nil {
				_, err = r.byte()
			}
			f.importGlobals++
		case 4: // tag: attribute, type index
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return r.fail("unknown import kind")
		}
		if err != nil {
			return err
		}
		f.imports = append(f.imports, im)
	}
	return nil
}

func (f *wasmFile) readMemory(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	min, max, hasMax, err := r.limits()
	if err != nil {
		return err
	}
	f.hasMemory, f.memMin, f.memMax, f.memHasMax = true, min, max, hasMax
	return nil
}

// readExports reads the exports and, when metering, returns them with every function index
// remapped (remap.go).
func (f *wasmFile) readExports(r *reader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if err := checkCount(n, maxExports, "exports"); err != nil {
		return nil, err
	}
	f.exports = n
	out := r.b
	if f.meter {
		out = appendULEB(make([]byte, 0, len(r.b)+8), uint64(n))
	}
	for i := uint32(0); i < n; i++ {
		at := r.off
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		kind, err := r.byte()
		if err != nil {
			return nil, err
		}
		idxAt := r.off
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		if kind == 0 {
			switch name {
			case "_start":
				f.hasStart = true
			case "run":
				f.hasRun = true
			case "_initialize":
				f.hasInit = true
			}
		}
		if name == budgetExport || name == meterExport || strings.HasPrefix(name, globalExportPrefix) {
			f.reserved = true
		}
		if f.meter {
			out = append(out, r.b[at:idxAt]...)
			if kind == 0 {
				idx = f.remap(idx)
			}
			out = appendULEB(out, uint64(idx))
		}
	}
	return out, nil
}
