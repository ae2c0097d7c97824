package batch

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxLineBytes bounds one input line (a 64 MiB input is about 86 MiB of base64, which is
// above any input limit the server accepts by default).
const MaxLineBytes = 96 << 20

// LineError is an input line that is not one of the accepted forms. It names the line
// (1-based, counting blank lines too) so the user can fix the file.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ParseLine turns one input line into the bytes of a task's input, following the
// command-line contract:
//
//   - a JSON string is its UTF-8 bytes;
//   - an object {"payload": base64} is the decoded bytes (no other key is allowed beside
//     "payload", so a typo is an error rather than a silent surprise);
//   - any other JSON value (number, array, object without "payload", true, false, null)
//     is its JSON text, as written on the line (surrounding whitespace removed).
//
// A blank line (only whitespace) gives ok=false and no error. Anything else is an error.
func ParseLine(line []byte) (input []byte, ok bool, err error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil, false, nil
	}
	if !json.Valid(line) {
		return nil, false, fmt.Errorf("not valid JSON (%s); %s", jsonReason(line), lineForms)
	}
	switch line[0] {
	case '"':
		var s string
		if err := json.Unmarshal(line, &s); err != nil {
			return nil, false, fmt.Errorf("bad JSON string: %v", err)
		}
		return []byte(s), true, nil
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(line, &obj); err != nil {
			return nil, false, fmt.Errorf("bad JSON object: %v", err)
		}
		raw, has := obj["payload"]
		if !has {
			return bytes.Clone(line), true, nil
		}
		if len(obj) != 1 {
			for k := range obj {
				if k != "payload" {
					return nil, false, fmt.Errorf("an object with \"payload\" may have no other key, found %q", k)
				}
			}
		}
		var b64 string
		// null would unmarshal into "" without error: refuse it as the REST API does,
		// rather than silently running the function on an empty input.
		if err := json.Unmarshal(raw, &b64); err != nil || bytes.Equal(raw, []byte("null")) {
			return nil, false, errors.New("\"payload\" must be a base64 string")
		}
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, false, fmt.Errorf("\"payload\" is not standard base64: %v", err)
		}
		return data, true, nil
	default:
		return bytes.Clone(line), true, nil
	}
}

// lineForms says what an input line may be, for the error of a line that is none of them.
const lineForms = `a line is a JSON string ("text"), an object {"payload": "<base64>"}, or any other JSON value (42, [1,2]); quote a bare word`

// jsonReason is why line is not one JSON value (json.Valid does not say), shortened.
func jsonReason(line []byte) string {
	var v any
	err := json.Unmarshal(line, &v)
	if err == nil {
		return "more than one value"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	return err.Error()
}

// lineReader reads lines of any length up to MaxLineBytes, counting them.
type lineReader struct {
	r    *bufio.Reader
	line int // number of the line last returned, 1-based
	buf  []byte
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 256<<10)}
}

// next returns the next input: its bytes, the number of the line it came from, or io.EOF.
// A bad line is a *LineError. The returned bytes are the caller's to keep.
func (lr *lineReader) next() ([]byte, int, error) {
	for {
		lr.buf = lr.buf[:0]
		for {
			frag, err := lr.r.ReadSlice('\n')
			lr.buf = append(lr.buf, frag...)
			if len(lr.buf) > MaxLineBytes {
				return nil, lr.line + 1, &LineError{Line: lr.line + 1, Err: fmt.Errorf("longer than %d bytes", MaxLineBytes)}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil && err != io.EOF {
				return nil, lr.line + 1, fmt.Errorf("reading inputs: %w", err)
			}
			if err == io.EOF && len(lr.buf) == 0 {
				return nil, lr.line, io.EOF
			}
			break
		}
		lr.line++
		input, ok, err := ParseLine(lr.buf)
		if err != nil {
			return nil, lr.line, &LineError{Line: lr.line, Err: err}
		}
		if !ok {
			continue
		}
		return input, lr.line, nil
	}
}

// Count reads every line of r, checks it and returns how many inputs it holds. The CLI
// calls it on a regular file before submitting anything, so a bad line in a file stops
// the batch before any task is created, and the progress bar knows its total.
func Count(r io.Reader) (int, error) {
	lr := newLineReader(r)
	n := 0
	for {
		_, _, err := lr.next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}
