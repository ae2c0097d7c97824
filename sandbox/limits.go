package sandbox

import (
	"faas/task"
	"fmt"
)

// Structural limits, checked by parseWasm in its one pass over the binary, before wazero's
// decoder or compiler sees the module. wazero itself bounds almost nothing (a function index
// below 2^27, values on the stack below 2^27), so a small valid module can make it allocate
// gigabytes or, with deep nesting, overflow the Go stack of its compiler, a fatal error no
// recover catches. The values start from the implementation limits every browser enforces
// (the WebAssembly JS API, "Implementation-defined limits") and are tighter where wazero needs
// it or where no toolchain comes near. docs/RATIONALE.md, "Limits of untrusted input", has
// the attack each one stops.
const (
	maxTypes        = 1_000_000
	maxTypeParams   = 1_000 // parameters of one function type
	maxTypeResults  = 1_000 // results of one function type
	maxFunctions    = 1_000_000
	maxImports      = 100_000
	maxExports      = 100_000
	maxGlobals      = 100_000 // browsers: 1,000,000; wazero keeps ~90 bytes each while compiling
	maxDataSegments = 100_000
	maxElemSegments = 100_000 // browsers: 10,000,000
	maxTables       = 16      // browsers: 100,000; toolchains emit one
	maxTableSize    = 10_000_000
	maxLocals       = 50_000 // locals of one function, parameters excluded
	maxBodySize     = 7_654_321
	maxBrTable      = 65_520 // targets of one br_table
	// maxNesting bounds block/loop/if nesting in one function, and maxBlocks their number:
	// wazero's compiler recurses per level (4,000,000 levels overflow its stack, fatally) and
	// takes time growing with the square of the blocks in a function (10,000 loops: ~1 s;
	// 100,000 blocks: ~30 s). docs/RATIONALE.md has the measurements behind the values.
	maxNesting = 1_000
	maxBlocks  = 10_000

	// tableElemBytes is what one table element costs: wazero keeps a table as a []uintptr.
	tableElemBytes = 8
)

// limitError is a module over one of the structural limits. Its message names the limit.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

func overLimit(format string, args ...any) error {
	return &limitError{msg: fmt.Sprintf(format, args...)}
}

// checkCount refuses a section declaring more entries than max.
func checkCount(n uint32, max int, what string) error {
	if uint64(n) > uint64(max) {
		return overLimit("declares %d %s; at most %d", n, what, max)
	}
	return nil
}

func limitPages(limits task.Limits) uint64 {
	p := uint64(limits.MemoryMB) * 16 // 64 KiB pages per MiB
	if p > 65536 {
		p = 65536
	}
	return p
}

func checkMemory(info *ModuleInfo, limits task.Limits) error {
	if lp := limitPages(limits); uint64(info.MemoryMinPages) > lp {
		return invalid("declares %d pages (%d MiB) of initial memory, limit is %d pages (memory_mb=%d)",
			info.MemoryMinPages, uint64(info.MemoryMinPages)/16, lp, limits.MemoryMB)
	}
	if b, lim := info.startBytes(), limitPages(limits)<<16; b > lim {
		return invalid("starts with %d table elements (%.1f MiB at %d bytes each) and %d pages of memory, %.1f MiB in all; limit is %d MiB (memory_mb=%d)",
			info.TableElements, float64(info.TableElements*tableElemBytes)/(1<<20), tableElemBytes,
			info.MemoryMinPages, float64(b)/(1<<20), lim>>20, limits.MemoryMB)
	}
	return nil
}
