package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"faas/client"
)

// readInput reads a file, or stdin for "-".
func (e *env) readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(e.stdin)
	}
	return os.ReadFile(name)
}

func (e *env) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

func (e *env) printRaw(raw json.RawMessage) error {
	_, err := fmt.Fprintf(e.stdout, "%s\n", raw)
	return err
}

// resolveFunction turns a function id or name (the newest function with that name) into a
// function id.
func resolveFunction(ctx context.Context, c *client.Client, idOrName string) (string, error) {
	f, err := c.Function(ctx, idOrName)
	if err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
			return "", &exitError{code: ExitServer, err: fmt.Errorf("no function with id or name %q (see 'faas functions')", idOrName)}
		}
		return "", err
	}
	return f.ID, nil
}

// execute runs FUNCTION (an id or a name) on in. An id-shaped argument is tried as an id
// first, saving a round trip; a name is resolved to its newest function first.
func execute(ctx context.Context, c *client.Client, fn string, in []byte) (string, error) {
	if looksLikeUUID(fn) {
		id, err := c.Execute(ctx, fn, in)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
			return id, err
		}
		// Not a known id: maybe a name that looks like one.
	}
	fnID, err := resolveFunction(ctx, c, fn)
	if err != nil {
		return "", err
	}
	return c.Execute(ctx, fnID, in)
}

func looksLikeUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// printable renders a function's stderr for a terminal: valid UTF-8 as it is (control
// characters other than newline and tab escaped, so a hostile function cannot drive the
// user's terminal), anything else as a quoted Go string. A trailing newline is dropped.
func printable(b []byte) string {
	b = bytes.TrimRight(b, "\n")
	if !utf8.Valid(b) {
		return strconv.Quote(string(b))
	}
	var sb strings.Builder
	for _, r := range string(b) {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			sb.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		sb.WriteString(q[1 : len(q)-1])
	}
	return sb.String()
}
