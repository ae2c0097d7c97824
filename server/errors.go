package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"faas/sandbox"
	"faas/store"
	"faas/task"
)

// The kinds of errors the server raises itself. Handlers wrap them with a message a person
// can act on (see requestError); the table below maps them, and the errors of the store and
// the sandbox, to an HTTP status and a stable code.
var (
	errBadRequest = errors.New("bad request")
	errNotFound   = errors.New("not found")
	errTooLarge   = errors.New("too large")
	errMethod     = errors.New("method not allowed")
	errForbidden  = errors.New("forbidden")
)

// requestError is an error whose message is meant for the client; kind classifies it.
type requestError struct {
	kind error
	msg  string
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.kind }

func badRequest(format string, a ...any) error {
	return &requestError{kind: errBadRequest, msg: fmt.Sprintf(format, a...)}
}

func notFound(format string, a ...any) error {
	return &requestError{kind: errNotFound, msg: fmt.Sprintf(format, a...)}
}

func tooLarge(format string, a ...any) error {
	return &requestError{kind: errTooLarge, msg: fmt.Sprintf(format, a...)}
}

// The stable error codes of the REST contract.
const (
	codeBadRequest    = "bad_request"
	codeInvalidModule = "invalid_module"
	codeNotFound      = "not_found"
	codeForbidden     = "forbidden"
	codeTooLarge      = "too_large"
	codeUnavailable   = "unavailable"
	codeInternal      = "internal"
)

// errorTable is THE mapping from errors to answers: the first row whose match accepts the
// error decides the status and the code. public rows show the error's own message (it was
// written for the client); the others show message instead and log the error.
var errorTable = []struct {
	match   func(error) bool
	status  int
	code    string
	public  bool
	message string
}{
	{match: is(errUnauthorized), status: http.StatusUnauthorized, code: codeUnauthorized, public: true},
	{match: is(errMediaType), status: http.StatusUnsupportedMediaType, code: codeMediaType, public: true},
	{match: is(errRateLimited), status: http.StatusTooManyRequests, code: codeRateLimited, public: true},
	{match: is(store.ErrQuota), status: http.StatusTooManyRequests, code: codeQuotaExceeded, public: true},
	{match: is(sandbox.ErrInvalidModule), status: http.StatusBadRequest, code: codeInvalidModule, public: true},
	{match: isA[*task.LimitError], status: http.StatusBadRequest, code: codeBadRequest, public: true},
	{match: is(errBadRequest), status: http.StatusBadRequest, code: codeBadRequest, public: true},
	{match: is(errNotFound), status: http.StatusNotFound, code: codeNotFound, public: true},
	{match: is(errForbidden), status: http.StatusForbidden, code: codeForbidden, public: true},
	{match: is(store.ErrNotFound), status: http.StatusNotFound, code: codeNotFound, public: true},
	{match: is(errMethod), status: http.StatusMethodNotAllowed, code: codeBadRequest, public: true},
	{match: is(errTooLarge), status: http.StatusRequestEntityTooLarge, code: codeTooLarge, public: true},
	{match: isA[*http.MaxBytesError], status: http.StatusRequestEntityTooLarge, code: codeTooLarge,
		message: "the request body is larger than this endpoint accepts"},
	{match: is(errBusy), status: http.StatusServiceUnavailable, code: codeUnavailable, public: true},
	{match: is(store.ErrUnavailable), status: http.StatusServiceUnavailable, code: codeUnavailable,
		message: "the server cannot reach Redis right now; try again shortly"},
	{match: is(context.DeadlineExceeded), status: http.StatusServiceUnavailable, code: codeUnavailable,
		message: "the server timed out waiting for Redis; try again shortly"},
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isA[T error](err error) bool {
	var t T
	return errors.As(err, &t)
}

// classify returns the status, code and client message for err.
func classify(err error) (status int, code, message string) {
	for _, row := range errorTable {
		if row.match(err) {
			if row.public {
				return row.status, row.code, err.Error()
			}
			return row.status, row.code, row.message
		}
	}
	return http.StatusInternalServerError, codeInternal, "internal server error; the server log has the details"
}

// writeError answers err as {"error": {"code", "message"}} and logs it: server-side
// failures at Error (Warn for 503), client mistakes at Debug.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error, attrs ...slog.Attr) {
	status, code, msg := classify(err)
	if status == http.StatusTooManyRequests {
		setRetryAfter(w, err)
	}
	level := slog.LevelDebug
	switch {
	case r.Context().Err() != nil:
		// The client left; nobody reads this answer.
	case status >= 500 && status != http.StatusServiceUnavailable:
		level = slog.LevelError
	case status == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	}
	if s.log.Enabled(r.Context(), level) {
		attrs = append(attrs,
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.String("code", code), slog.Any("err", err))
		s.log.LogAttrs(r.Context(), level, "request failed", attrs...)
	}
	if status == http.StatusServiceUnavailable {
		// Every 503 is passing (a budget spent, Redis away): say when to come back.
		w.Header().Set("Retry-After", "1")
	}
	b := getBuf()
	*b = append(*b, `{"error":{"code":`...)
	*b = appendString(*b, code)
	*b = append(*b, `,"message":`...)
	*b = appendString(*b, msg)
	*b = append(*b, "}}\n"...)
	writeJSON(w, status, *b)
	putBuf(b)
}
