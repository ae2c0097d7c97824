//go:build wasip1

package fn

// The export lives in its own file so that the package still builds (and
// its source can be embedded) on the host.

//go:wasmexport run
func wasmRun() { run() }
