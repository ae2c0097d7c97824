//go:build wasip1

// Command double (Go reactor, GOOS=wasip1 -buildmode=c-shared): the same function as
// ../go, written with faas/fn. The Go runtime and this package's init run once, at
// pre-initialization; every task then starts from that snapshot and calls run.
package main

import (
	"errors"
	"strconv"
	"strings"

	"faas/fn"
)

func init() { fn.Handle(double) }

func double(in []byte) ([]byte, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(string(in)), 10, 64)
	if err != nil {
		return nil, errors.New("double: not an integer")
	}
	return strconv.AppendInt(nil, v*2, 10), nil
}

// main is never called in a reactor; the go command requires it in package main.
func main() {}
