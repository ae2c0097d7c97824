package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"faas/task"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// b64 is a JSON field holding base64 (standard encoding, with padding). It tells a missing
// or null value (set false) from "" (set true, empty data), and keeps a decoding error for
// the handler to report with the field's name instead of failing the whole decode.
type b64 struct {
	data []byte
	set  bool
	err  error
}

func (p *b64) UnmarshalJSON(raw []byte) error {
	*p = b64{}
	if string(raw) == "null" {
		return nil
	}
	if len(raw) < 2 || raw[0] != '"' {
		p.err = errors.New("must be a base64 string")
		return nil
	}
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') >= 0 { // escapes such as \/ : let encoding/json undo them
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			p.err = err
			return nil
		}
		s = []byte(str)
	}
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(dst, s)
	if err != nil {
		p.err = fmt.Errorf("is not valid base64 (standard encoding, with padding): %w", err)
		return nil
	}
	p.data, p.set = dst[:n], true
	return nil
}

// field checks a required base64 field and returns its bytes.
func (p *b64) field(name string) ([]byte, error) {
	if p.err != nil {
		return nil, badRequest("%s %v", name, p.err)
	}
	if !p.set {
		return nil, badRequest("%s is required (base64; \"\" for empty input)", name)
	}
	return p.data, nil
}

// registerRequest is the JSON body of POST /register_function.
type registerRequest struct {
	Name    string       `json:"name"`
	Payload b64          `json:"payload"`
	Limits  *task.Limits `json:"limits"`
}

// executeRequest is the JSON body of POST /execute_function.
type executeRequest struct {
	FunctionID   string `json:"function_id"`
	FunctionName string `json:"function_name"` // instead of function_id: the newest of that name
	Payload      b64    `json:"payload"`
}

// batchRequest is the JSON body of POST /execute_batch.
type batchRequest struct {
	FunctionID string `json:"function_id"`
	Payloads   []b64  `json:"payloads"`
}

// waitRequest is the JSON body of POST /wait.
type waitRequest struct {
	TaskIDs []string `json:"task_ids"`
	Wait    string   `json:"wait"`
}

// decodeJSON decodes exactly one JSON object from body into v, refusing unknown fields and
// trailing data. Errors are bad requests with a readable message, or the reader's own error
// (a *http.MaxBytesError when the body is too large).
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return jsonError(err)
		}
		return badRequest("request body has data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe), errors.Is(err, errBusy):
		return err
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body is truncated JSON")
	case errors.As(err, &syn):
		return badRequest("request body is not valid JSON (at byte %d): %s", syn.Offset,
			strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("request body must be a JSON object, not %s", typ.Value)
		}
		return badRequest("field %q must be %s, not %s", typ.Field, jsonTypeName(typ.Type), typ.Value)
	default:
		// Unknown fields and the like: encoding/json's message names the field.
		return badRequest("bad request body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
}

func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	}
	return t.String()
}

// readBody reads a whole body already limited by http.MaxBytesReader. Memory grows as bytes
// arrive, never from Content-Length (a claim: reserving it up front let stalled uploads hold
// 32 MiB each for nothing), and in fixed chunks rather than a doubling buffer, so that an
// upload that stalls holds what it sent and no more. The chunks are joined once at the end.
func readBody(r io.Reader) ([]byte, error) {
	var (
		chunks [][]byte
		total  int
	)
	for {
		c := make([]byte, bodyChunk)
		n, err := io.ReadFull(r, c)
		if n > 0 {
			chunks = append(chunks, c[:n])
			total += n
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(chunks) == 1 {
		return chunks[0], nil
	}
	out := make([]byte, 0, total)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out, nil
}
