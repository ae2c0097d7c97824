package sandbox

// This file writes a reactor's snapshot module (snapshot.go): the pre-initialization
// module's sections with the captured globals and memory baked in.

import (
	"bytes"
	"fmt"
)

// snapshotSections returns the snapshot module: secs (the instrumented reactor) with each
// captured global's initial value replaced by values[i], the memory's minimum set to mem's
// pages, its active data segments emptied and mem's non-zero chunks appended as active
// segments, and no start section. written is the bytes those segments hold.
func snapshotSections(secs []wasmSection, globals []globalDef, values []uint64, mem []byte, userGlobals uint32) (out []byte, written int64, err error) {
	byIndex := make(map[uint32]int, len(globals))
	for i, g := range globals {
		byIndex[g.defined] = i
	}
	segs, written := dataSegments(mem)
	res := make([]wasmSection, 0, len(secs)+1)
	sawData := false
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
			c, err = dataWith(c, segs)
		case 12: // data count: the segments appended
			c, err = dataCountWith(c, len(segs))
		}
		if err != nil {
			return nil, 0, fmt.Errorf("writing the snapshot module: %w", err)
		}
		res = append(res, wasmSection{id: sec.id, contents: c})
	}
	if !sawData && len(segs) > 0 {
		res = extend(res, secData, 0, uint64(len(segs)), bytes.Join(segs, nil))
	}
	return joinSections(res), written, nil
}

// dataSegments encodes each run of non-zero chunks of mem as an active data segment of
// memory 0.
func dataSegments(mem []byte) (segs [][]byte, written int64) {
	var zero [chunkSize]byte
	for at := 0; at < len(mem); {
		if bytes.Equal(mem[at:min(at+chunkSize, len(mem))], zero[:min(chunkSize, len(mem)-at)]) {
			at += chunkSize
			continue
		}
		end := at + chunkSize
		for end < len(mem) && !bytes.Equal(mem[end:min(end+chunkSize, len(mem))], zero[:min(chunkSize, len(mem)-end)]) {
			end += chunkSize
		}
		end = min(end, len(mem))
		seg := appendSLEB([]byte{0x00, 0x41}, int64(int32(uint32(at)))) // flags 0, i32.const at
		seg = append(seg, 0x0b)
		seg = appendULEB(seg, uint64(end-at))
		segs = append(segs, append(seg, mem[at:end]...))
		written += int64(end - at)
		at = end
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

// dataWith empties the active segments (kept, so passive segments keep their indices) and
// appends segs.
func dataWith(c []byte, segs [][]byte) ([]byte, error) {
	r := &reader{b: c}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendULEB(nil, uint64(n)+uint64(len(segs)))
	for i := uint32(0); i < n; i++ {
		at := r.off
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		if flags == 2 {
			if _, err := r.u32(); err != nil { // memory index
				return nil, err
			}
		}
		if flags != 1 {
			if _, err := (&wasmFile{}).copyConstExpr(r, nil); err != nil {
				return nil, err
			}
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		if _, err := r.bytes(uint64(size)); err != nil {
			return nil, err
		}
		if flags == 1 { // passive: memory.init may use it
			out = append(out, r.b[at:r.off]...)
			continue
		}
		out = append(out, 0x00, 0x41, 0x00, 0x0b, 0x00) // active, at 0, no bytes
	}
	for _, s := range segs {
		out = append(out, s...)
	}
	return out, nil
}

func dataCountWith(c []byte, added int) ([]byte, error) {
	r := &reader{b: c}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	return appendULEB(nil, uint64(n)+uint64(added)), nil
}
