package server

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"faas/store"
)

// Answers on the hot paths (submit, status, result, wait) are appended by hand into pooled
// buffers: no reflection, one allocation-free pass. Rarely used answers go through
// encoding/json.

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuf() *[]byte { b := bufPool.Get().(*[]byte); *b = (*b)[:0]; return b }

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 { // big answers (results of MiBs) are not kept around
		bufPool.Put(b)
	}
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendBase64(b, data []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, data)
	return append(b, '"')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendTask appends a task answer:
//
//	{"task_id", "status", "result", "error"?, "stderr"?, "function_id", "attempts",
//	 "duration_ms", "cpu_units", "worker"?, "created_at", "started_at"?, "finished_at"?}
//
// result is null until the task is terminal; a FAILED task's result is base64 of
// "<kind>: <message>". withResult false (the status endpoint) leaves out result and stderr.
func appendTask(b []byte, rec *store.Record, withResult bool) []byte {
	b = append(b, `{"task_id":`...)
	b = appendString(b, rec.ID)
	b = append(b, `,"status":`...)
	b = appendString(b, string(rec.Status))
	terminal := rec.Status.Terminal()
	if withResult {
		b = append(b, `,"result":`...)
		switch {
		case !terminal:
			b = append(b, "null"...)
		case rec.Error != nil:
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, []byte(rec.Error.Error()))
			b = append(b, '"')
		default:
			b = appendBase64(b, rec.Result)
		}
	}
	if rec.Error != nil && terminal {
		b = append(b, `,"error":{"kind":`...)
		b = appendString(b, string(rec.Error.Kind))
		b = append(b, `,"message":`...)
		b = appendString(b, rec.Error.Message)
		b = append(b, '}')
	}
	if withResult && len(rec.Stderr) > 0 {
		b = append(b, `,"stderr":`...)
		b = appendBase64(b, rec.Stderr)
	}
	if rec.FunctionID != "" {
		b = append(b, `,"function_id":`...)
		b = appendString(b, rec.FunctionID)
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(rec.Attempts), 10)
	if terminal {
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendInt(b, rec.DurationMs, 10)
		b = append(b, `,"cpu_units":`...)
		b = strconv.AppendUint(b, rec.CPUUnits, 10)
	}
	if rec.Worker != "" {
		b = append(b, `,"worker":`...)
		b = appendString(b, rec.Worker)
	}
	if !rec.CreatedAt.IsZero() {
		b = append(b, `,"created_at":`...)
		b = appendTime(b, rec.CreatedAt)
	}
	if !rec.StartedAt.IsZero() {
		b = append(b, `,"started_at":`...)
		b = appendTime(b, rec.StartedAt)
	}
	if !rec.FinishedAt.IsZero() {
		b = append(b, `,"finished_at":`...)
		b = appendTime(b, rec.FinishedAt)
	}
	return append(b, '}')
}
