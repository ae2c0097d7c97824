// Package samples holds the example functions of faas as committed Wasm binaries, embedded so
// that any package's tests and benchmarks can run them without a toolchain.
//
// Every sample is a WASI preview1 module (the function ABIs in docs/API.md): it reads its
// input on stdin and writes its result on stdout. Most are commands (export _start); the
// reactors (export run, optionally _initialize) are named so. The sources sit beside each
// .wasm; build.sh rebuilds them all. README.md says what each one reads and writes.
package samples

import (
	_ "embed"
	"faas/task"
	"sort"
)

// The "double" function in four languages, same behaviour: reads a decimal integer from stdin
// (surrounding whitespace ignored) and writes twice it in decimal with no newline ("21" →
// "42"); anything else writes a message on stderr and exits with code 2.
var (
	//go:embed double/double_wat.wasm
	DoubleWAT []byte
	//go:embed double/double_c.wasm
	DoubleC []byte
	//go:embed double/double_go.wasm
	DoubleGo []byte // Go wasip1: ~2 MB, ~1 s to compile without the on-disk cache
	//go:embed double/double_as.wasm
	DoubleAS []byte
)

// The "double" function as reactors (docs/API.md, "Writing a function"): the same behaviour,
// exporting run (and _initialize) instead of _start, pre-initialized once per sandbox.
var (
	//go:embed double/double_go_reactor.wasm
	DoubleGoReactor []byte // Go -buildmode=c-shared with faas/fn (double/go-reactor)
	//go:embed double/double_c_reactor.wasm
	DoubleCReactor []byte // clang -mexec-model=reactor (double/double_reactor.c)
	//go:embed double/double_as_reactor.wasm
	DoubleASReactor []byte // AssemblyScript, start-up exported as _initialize (double/as)
)

// Reactors that check a task starts from the snapshot and never from another task's state
// (reactor/*.wat, reactor/gomap); each writes the same thing in every task.
var (
	// ReactorCounter adds 1 to a global and to a memory cell that _initialize set to 0 (the
	// module's own initial values are 100), and writes both: "1 1".
	//go:embed reactor/counter.wasm
	ReactorCounter []byte
	// ReactorFill writes the size its buffer had when run began ("0"), then fills 60,000 bytes.
	//go:embed reactor/fill.wasm
	ReactorFill []byte
	// ReactorGrow grows memory by 16 pages and writes how many it then has: "17".
	//go:embed reactor/grow.wasm
	ReactorGrow []byte
	// ReactorClock writes "ok" when the monotonic clock is not behind what _initialize read.
	//go:embed reactor/clock.wasm
	ReactorClock []byte
	// ReactorGoMap (Go, faas/fn) counts its calls and fills a map: "calls=1 map=0".
	//go:embed reactor/gomap.wasm
	ReactorGoMap []byte
)

var (
	// Noop reads nothing, writes nothing and returns: the smallest function, for benchmarks.
	//go:embed noop/noop.wasm
	Noop []byte
	// Echo copies stdin to stdout.
	//go:embed echo/echo.wasm
	Echo []byte
	// Wordcount reads text and writes {"lines":L,"words":W,"bytes":B} (counted as wc does).
	//go:embed wordcount/wordcount.wasm
	Wordcount []byte
	// Fib reads n (0..90) and writes fib(n), by naive recursion: CPU-bound (n=30: ~1.6M calls).
	//go:embed fib/fib.wasm
	Fib []byte
	// Sleep reads a number of milliseconds, sleeps that long, then writes "slept N ms".
	//go:embed sleep/sleep.wasm
	Sleep []byte
	// Sort reads n (1..1000000), merge-sorts n pseudo-random integers (the same ones every run)
	// and writes "sorted N checksum C": a realistic CPU-bound C program (n=100000: ~1.7M
	// comparisons and the memory traffic of a merge sort).
	//go:embed sort/sort.wasm
	Sort []byte
	// Spin counts an i64 to 10,000,000 in the tightest loop there is and writes nothing: the
	// worst case for a per-iteration check.
	//go:embed spin/spin.wasm
	Spin []byte
)

var (
	//go:embed hostile/infinite_loop.wasm
	infiniteLoop []byte
	//go:embed hostile/start_loop.wasm
	startLoop []byte
	//go:embed hostile/call_tree.wasm
	callTree []byte
	//go:embed hostile/memory_bomb.wasm
	memoryBomb []byte
	//go:embed hostile/deep_recursion.wasm
	deepRecursion []byte
	//go:embed hostile/huge_output.wasm
	hugeOutput []byte
	//go:embed hostile/unreachable.wasm
	unreachable []byte
	//go:embed hostile/exit_nonzero.wasm
	exitNonzero []byte
	//go:embed hostile/open_file.wasm
	openFile []byte
	//go:embed hostile/read_env.wasm
	readEnv []byte
	//go:embed hostile/bad_import.wasm
	badImport []byte
	//go:embed hostile/table_grow_max.wasm
	tableGrowMax []byte
	//go:embed hostile/table_grow_loop.wasm
	tableGrowLoop []byte
	//go:embed hostile/table_2gib.wasm
	table2GiB []byte
	//go:embed hostile/tables_1gib.wasm
	tables1GiB []byte
	//go:embed reactor/init_loop.wasm
	reactorInitLoop []byte
	//go:embed reactor/init_trap.wasm
	reactorInitTrap []byte
	//go:embed reactor/init_oom.wasm
	reactorInitOOM []byte
	//go:embed reactor/init_output.wasm
	reactorInitOutput []byte
	//go:embed reactor/init_table.wasm
	reactorInitTable []byte
	//go:embed reactor/both.wasm
	reactorBoth []byte
)

// The host-call bombs are hostile too, but need limits of their own (see their .wat), so
// they are not in Hostile, whose modules run under default limits.
var (
	// RandomBomb grows its memory to 1 GiB (memory_mb=1024) and asks random_get to fill it
	// in one call. Under a short timeout_ms: FAILED timeout.
	//go:embed hostile/random_bomb.wasm
	RandomBomb []byte
	// WriteBomb writes 64 GiB to stderr in one fd_write (1,048,576 iovecs of one 64 KiB
	// block). Under a short timeout_ms: FAILED timeout.
	//go:embed hostile/write_bomb.wasm
	WriteBomb []byte
)

// Hostile holds the modules that misbehave, by name. HostileKind says what each must get.
var Hostile = map[string][]byte{
	"infinite_loop":   infiniteLoop,
	"start_loop":      startLoop,
	"call_tree":       callTree,
	"memory_bomb":     memoryBomb,
	"deep_recursion":  deepRecursion,
	"huge_output":     hugeOutput,
	"unreachable":     unreachable,
	"exit_nonzero":    exitNonzero,
	"open_file":       openFile,
	"read_env":        readEnv,
	"bad_import":      badImport,
	"table_grow_max":  tableGrowMax,
	"table_grow_loop": tableGrowLoop,
	"table_2gib":      table2GiB,
	"tables_1gib":     tables1GiB,
	// reactors whose _initialize misbehaves: the task that pre-initializes them fails
	"reactor_init_loop":   reactorInitLoop,
	"reactor_init_trap":   reactorInitTrap,
	"reactor_init_oom":    reactorInitOOM,
	"reactor_init_output": reactorInitOutput,
	"reactor_init_table":  reactorInitTable,
	"reactor_both":        reactorBoth,
}

// HostileKind is the failure kind (as in the REST contract) each hostile module must end
// with, under default limits except a short timeout. "" means the module must be refused at
// registration (validation), so it never runs.
//
// open_file and read_env try to read host files and the host environment; they print what
// they got and exit 0 when anything worked, and exit 1 with "denied" / "no environment" on
// stderr (stdout empty) when nothing did. So their required outcome is "exit" (code 1).
var HostileKind = map[string]task.Kind{
	"infinite_loop":   task.KindTimeout,
	"start_loop":      task.KindTimeout,
	"call_tree":       task.KindTimeout,
	"memory_bomb":     task.KindOutOfMemory,
	"deep_recursion":  task.KindTrap,
	"huge_output":     task.KindOutputTooLarge,
	"unreachable":     task.KindTrap,
	"exit_nonzero":    task.KindExit, // code 3, after writing "bye" to stdout
	"open_file":       task.KindExit, // code 1, stderr "denied\n", stdout empty
	"read_env":        task.KindExit, // code 1, stderr "no environment\n", stdout empty
	"bad_import":      "",            // refused: imports env.system
	"table_grow_max":  task.KindOutOfMemory,
	"table_grow_loop": task.KindOutOfMemory,
	"table_2gib":      "", // refused: a table of 2^28 elements
	"tables_1gib":     "", // refused: tables of 2^27 elements
	// _initialize loops, traps, grows memory for ever, writes 100 MB to stdout, grows a table
	"reactor_init_loop":   task.KindTimeout,
	"reactor_init_trap":   task.KindTrap,
	"reactor_init_oom":    task.KindOutOfMemory,
	"reactor_init_output": task.KindOutputTooLarge,
	"reactor_init_table":  task.KindInternal, // a table cannot be captured in a snapshot
	"reactor_both":        "",                // refused: exports both _start and run
}

// Good returns the well-behaved samples by name (double_wat, double_c, double_go, double_as,
// noop, echo, wordcount, fib, sleep, sort, spin).
func Good() map[string][]byte {
	return map[string][]byte{
		"double_wat": DoubleWAT,
		"double_c":   DoubleC,
		"double_go":  DoubleGo,
		"double_as":  DoubleAS,
		"noop":       Noop,
		"echo":       Echo,
		"wordcount":  Wordcount,
		"fib":        Fib,
		"sleep":      Sleep,
		"sort":       Sort,
		"spin":       Spin,
	}
}

// Get returns the sample called name (a Good name, or a Hostile key), or nil.
func Get(name string) []byte {
	if b, ok := Good()[name]; ok {
		return b
	}
	return Hostile[name]
}

// Names returns every sample name, good then hostile, each group sorted.
func Names() []string {
	var good, bad []string
	for n := range Good() {
		good = append(good, n)
	}
	for n := range Hostile {
		bad = append(bad, n)
	}
	sort.Strings(good)
	sort.Strings(bad)
	return append(good, bad...)
}
