package sandbox

// This file: the errors of the package and what it says about a module (ModuleInfo, Hash).

import (
	"crypto/sha256"

	"encoding/hex"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero/api"
)

var (
	// ErrInvalidModule is matched (errors.Is) by every refusal of Validate and Load.
	ErrInvalidModule = errors.New("invalid module")
	// ErrNotLoaded is Run's answer for a hash it has not compiled (or has evicted): Load the
	// module and run again.
	ErrNotLoaded = errors.New("module not loaded")
	// ErrClosed is returned by every call on a closed Sandbox.
	ErrClosed = errors.New("sandbox closed")
	// ErrNotHash is Evict's answer for a string that is not a module hash (Hash's form).
	ErrNotHash = errors.New("not a module hash")
)

// ValidationError is why a module was refused, worded for the person who uploaded it.
type ValidationError struct{ Reason string }

func (e *ValidationError) Error() string { return "invalid module: " + e.Reason }

// Is makes errors.Is(err, ErrInvalidModule) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidModule }

func invalid(format string, args ...any) error {
	return &ValidationError{Reason: fmt.Sprintf(format, args...)}
}

// ModuleInfo describes a module that passed validation.
type ModuleInfo struct {
	Hash           string   // lowercase hex sha256 of the module's bytes
	Size           int64    // bytes
	ABI            string   // ABICommand (exports _start) or ABIReactor (exports run)
	Imports        []string // "wasi_snapshot_preview1.fd_write", ... in import order
	Functions      int      // function bodies (each metered at its entry)
	Loops          int      // loop instructions (each metered at its header)
	MemoryMinPages uint32   // 64 KiB pages the module starts with (0: no memory)
	MemoryMaxPages uint32   // declared maximum; 0 when HasMemoryMax is false
	HasMemoryMax   bool
	// TableElements is the sum of the tables' minimum sizes. Each element costs 8 bytes of
	// the task's memory_mb, like linear memory does.
	TableElements uint64
}

// startBytes is what an instance of the module holds before it runs: its initial linear
// memory and its tables.
func (i *ModuleInfo) startBytes() uint64 {
	return uint64(i.MemoryMinPages)<<16 + i.TableElements*tableElemBytes
}

// Hash returns the lowercase hex sha256 of wasm: the key of a module everywhere in faas.
func Hash(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

func sig(fn api.FunctionDefinition) string {
	str := func(ts []api.ValueType) string {
		out := "("
		for i, t := range ts {
			if i > 0 {
				out += ", "
			}
			out += api.ValueTypeName(t)
		}
		return out + ")"
	}
	return str(fn.ParamTypes()) + " -> " + str(fn.ResultTypes())
}

func externName(k byte) string {
	switch k {
	case 1:
		return "table"
	case 2:
		return "memory"
	case 3:
		return "global"
	case 4:
		return "tag"
	}
	return "function"
}
