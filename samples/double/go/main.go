//go:build wasip1

// Command double (Go, GOOS=wasip1) reads a decimal integer from stdin (surrounding
// whitespace ignored) and writes twice it in decimal, with no newline. Anything else: a
// message on stderr, exit 2. Kept to io, os and strconv so the module stays small.
package main

import (
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		os.Stderr.WriteString("double: " + err.Error() + "\n")
		os.Exit(1)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(in)), 10, 64)
	if err != nil {
		os.Stderr.WriteString("double: not an integer\n")
		os.Exit(2)
	}
	os.Stdout.WriteString(strconv.FormatInt(v*2, 10))
}
