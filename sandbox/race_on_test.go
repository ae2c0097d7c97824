//go:build race

package sandbox

// raceBuild: the race runtime carves the Go heap out of mappings it reserved at start, so an
// address-space limit set later does not bound it.
const raceBuild = true
