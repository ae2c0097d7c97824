// Package fn is the short way to write a faas function in Go with the
// reactor ABI: the module exports run, which reads the task's input from
// stdin, calls the handler and writes its result to stdout.
//
//	package main
//
//	import "faas/fn"
//
//	func init() { fn.Handle(double) }
//
//	func double(in []byte) ([]byte, error) { ... }
//
//	func main() {}
//
// Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o double.wasm
//
// The handler must be set in an init function: a reactor's main is never
// called, and whatever init computes is captured once, at pre-initialization,
// and shared by every task (see docs/API.md "Writing a function").
package fn

import (
	"io"
	"os"
)

// handler is the function run calls; nil until Handle.
var handler func(input []byte) ([]byte, error)

// Handle sets the function every task runs. Call it from init.
func Handle(h func(input []byte) ([]byte, error)) {
	handler = h
}

// run is the reactor's entry point, called once per task in a fresh instance.
// A handler error goes to stderr and the task exits 1 (FAILED, kind exit).
func run() {
	if handler == nil {
		fail("fn: no handler: call fn.Handle in an init function")
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("fn: reading the input: " + err.Error())
	}
	out, err := handler(in)
	if err != nil {
		fail(err.Error())
	}
	if _, err := os.Stdout.Write(out); err != nil {
		fail("fn: writing the result: " + err.Error())
	}
}

func fail(msg string) {
	os.Stderr.WriteString(msg + "\n")
	os.Exit(1)
}
