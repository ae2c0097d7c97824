//go:build wasip1

// Command gomap (Go reactor) checks that a task starts from the snapshot, not from the
// previous task: it counts its calls in a package variable and fills a map in every task,
// and reports both as they were when the task began ("calls=1 map=0" every time).
package main

import (
	"strconv"

	"faas/fn"
)

var (
	calls int
	seen  = map[string]int{}
)

func init() { fn.Handle(handle) }

func handle(in []byte) ([]byte, error) {
	calls++
	before := len(seen)
	for i := 0; i < 1000; i++ {
		seen[strconv.Itoa(i)+string(in)] = i
	}
	return []byte("calls=" + strconv.Itoa(calls) + " map=" + strconv.Itoa(before)), nil
}

func main() {}
