package sandbox

// This file writes a reactor's snapshot module (snapshot.go): the pre-initialization
// module's sections with the captured globals and memory baked in.

import (
	"bytes"
	"fmt"
)

// snapshotSections returns the snapshot module: secs (the instrumented reactor) with each
// captured global's initial value replaced by values[i], the memory's minimum set to mem's
// pages, its active data segments dropped and, with withData, mem's non-zero chunks appended
// as active segments (without: the memory comes from a cowImage), and no start section.
// written is the bytes those segments hold.
func snapshotSections(secs []wasmSection, globals []globalDef, values []uint64, mem []byte, userGlobals uint32, withData bool) (out []byte, written int64, err error) {
	defer func() { // a bug of ours on a module wazero accepted fails the task, not the worker
		if p := recover(); p != nil {
			out, written, err = nil, 0, fmt.Errorf("writing the snapshot module: panic: %v", p)
		}
	}()
	byIndex := make(map[uint32]int, len(globals))
	for i, g := range globals {
		byIndex[g.defined] = i
	}
	var segs [][]byte
	if withData {
		segs, written = dataSegments(mem)
	}
	res := make([]wasmSection, 0, len(secs)+1)
	sawData := false
	var kept uint32
	countAt := -1
	for _, sec := range secs {
		c := sec.contents
		switch sec.id {
		case secStart:
			continue // it ran before _initialize; its effects are in the snapshot
		case secMemory:
			c, err = memoryWithMin(c, uint64(len(mem)>>16))
		case secGlobal:
			c, err = globalsWith(c, globals, values, byIndex, userGlobals)
		case secData:
			sawData = true
			c, kept, err = dataWith(c, segs)
		case 12: // data count: written once the data section is (it comes before it)
			countAt = len(res)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("writing the snapshot module: %w", err)
		}
		res = append(res, wasmSection{id: sec.id, contents: c})
	}
	if !sawData && len(segs) > 0 {
		res = extend(res, secData, 0, uint64(len(segs)), bytes.Join(segs, nil))
	}
	if countAt >= 0 {
		res[countAt].contents = dataCountWith(kept, len(segs))
	}
	return joinSections(res), written, nil
}

// nonZeroRuns returns the [start, end) ranges of mem's runs of non-zero chunkSize chunks.
func nonZeroRuns(mem []byte) [][2]int {
	var zero [chunkSize]byte
	isZero := func(at int) bool {
		end := min(at+chunkSize, len(mem))
		return bytes.Equal(mem[at:end], zero[:end-at])
	}
	var runs [][2]int
	for at := 0; at < len(mem); {
		if isZero(at) {
			at += chunkSize
			continue
		}
		end := at + chunkSize
		for end < len(mem) && !isZero(end) {
			end += chunkSize
		}
		end = min(end, len(mem))
		runs = append(runs, [2]int{at, end})
		at = end
	}
	return runs
}

// dataSegments encodes each run of non-zero chunks of mem as an active data segment of
// memory 0.
func dataSegments(mem []byte) (segs [][]byte, written int64) {
	for _, r := range nonZeroRuns(mem) {
		seg := appendSLEB([]byte{0x00, 0x41}, int64(int32(uint32(r[0])))) // flags 0, i32.const at
		seg = append(seg, 0x0b)
		seg = appendULEB(seg, uint64(r[1]-r[0]))
		segs = append(segs, append(seg, mem[r[0]:r[1]]...))
		written += int64(r[1] - r[0])
	}
	return segs, written
}

// memoryWithMin rewrites the memory section's one memory with min pages.
func memoryWithMin(c []byte, pages uint64) ([]byte, error) {
	r := &reader{b: c}
	n, err := r.u32()
	if err != nil || n != 1 {
		return c, err // no memory: nothing captured, nothing to set
	}
	flags := r.b[r.off]
	_, max, hasMax, err := r.limits()
	if err != nil {
		return nil, err
	}
	out := appendULEB(nil, 1)
	out = appendULEB(append(out, flags), pages)
	if hasMax {
		out = appendULEB(out, max)
	}
	return append(out, c[r.off:]...), nil
}

// globalsWith rewrites the initial value of every captured global.
func globalsWith(c []byte, globals []globalDef, values []uint64, byIndex map[uint32]int, userGlobals uint32) ([]byte, error) {
	r := &reader{b: c}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendULEB(make([]byte, 0, len(c)+len(globals)*8), uint64(n))
	for i := uint32(0); i < n; i++ {
		t, err := r.bytes(2)
		if err != nil {
			return nil, err
		}
		at := r.off
		if _, err := (&wasmFile{}).copyConstExpr(r, nil); err != nil {
			return nil, err
		}
		out = append(out, t...)
		if k, ok := byIndex[i]; ok && i < userGlobals {
			out = append(out, constExpr(globals[k].typ, values[k])...)
			continue
		}
		out = append(out, r.b[at:r.off]...)
	}
	return out, nil
}

// dataWith drops the active segments, but for the empty ones it must keep so that passive
// segments (memory.init may use them) keep their indices, and appends segs. It returns the
// section and the number of segments before segs.
func dataWith(c []byte, segs [][]byte) ([]byte, uint32, error) {
	r := &reader{b: c}
	n, err := r.u32()
	if err != nil {
		return nil, 0, err
	}
	var kept [][]byte
	keep := 0 // segments up to the last passive one
	for i := uint32(0); i < n; i++ {
		at := r.off
		flags, err := r.u32()
		if err != nil {
			return nil, 0, err
		}
		if flags == 2 {
			if _, err := r.u32(); err != nil { // memory index
				return nil, 0, err
			}
		}
		if flags != 1 {
			if _, err := (&wasmFile{}).copyConstExpr(r, nil); err != nil {
				return nil, 0, err
			}
		}
		size, err := r.u32()
		if err != nil {
			return nil, 0, err
		}
		if _, err := r.bytes(uint64(size)); err != nil {
			return nil, 0, err
		}
		if flags == 1 {
			kept = append(kept, r.b[at:r.off])
			keep = len(kept)
			continue
		}
		kept = append(kept, []byte{0x00, 0x41, 0x00, 0x0b, 0x00}) // active, at 0, no bytes
	}
	kept = kept[:keep]
	out := appendULEB(nil, uint64(len(kept)+len(segs)))
	for _, s := range kept {
		out = append(out, s...)
	}
	for _, s := range segs {
		out = append(out, s...)
	}
	return out, uint32(len(kept)), nil
}

// dataCountWith is the data count section for kept + added segments.
func dataCountWith(kept uint32, added int) []byte {
	return appendULEB(nil, uint64(kept)+uint64(added))
}
