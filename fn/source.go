//go:build !wasip1

package fn

import _ "embed"

// FnSource and ExportSource are this package's source, which `faas new go`
// writes into a new project so that it builds outside this repository.
//
//go:embed fn.go
var FnSource string

//go:embed export_wasip1.go
var ExportSource string
