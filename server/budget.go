package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
)

// Memory held for requests is bounded server-wide by two budgets (see docs/RATIONALE.md,
// "Requests bounded in memory"): the bytes of request bodies read so far by handlers still
// running, and the stored size of the results being answered. A request that would go
// beyond one is answered 503 unavailable with Retry-After: it is the server that is full,
// not the request that is wrong, and the client may try again as soon as others finish.

// errBusy is the kind of the 503 answered when a budget is spent.
var errBusy = errors.New("server busy")

func busy(format string, a ...any) error {
	return &requestError{kind: errBusy, msg: fmt.Sprintf(format, a...)}
}

// memBudget counts bytes held at once. take never blocks: a request that does not fit is
// refused, so that a flood of them queues nowhere in the server.
type memBudget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes if the total stays within limit (at most max).
func (b *memBudget) take(n, limit int64) bool {
	limit = min(limit, b.max)
	for {
		u := b.used.Load()
		if u+n > limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *memBudget) give(n int64) { b.used.Add(-n) }

const (
	// bodyChunk is what a body's reservation grows by, and the most read at once: buffers
	// grow as bytes arrive, never from a Content-Length announced before them.
	bodyChunk = 64 << 10
	// smallBody is the part of any body that may draw on the whole budget. Beyond it a body
	// draws only while the budget is less than largeShare full, so that big uploads (stalled
	// ones included) cannot lock out small requests such as submissions and waits.
	smallBody = 64 << 10
)

// largeShare is the fraction of the body budget (in quarters) bytes beyond smallBody may use.
const largeShare = 3

// budgetedBody reads a request body, reserving budget before each chunk it reads.
type budgetedBody struct {
	io.ReadCloser
	b    *memBudget
	read int64 // bytes read so far
	held int64 // bytes reserved: always at least read
}

func (bb *budgetedBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > bodyChunk {
		p = p[:bodyChunk]
	}
	if need := bb.read + int64(len(p)) - bb.held; need > 0 {
		grow := max(need, min(bodyChunk, bb.held)) // reserve ahead, doubling up to a chunk
		limit := bb.b.max
		if bb.held+grow > smallBody {
			limit = bb.b.max / 4 * largeShare
		}
		if !bb.b.take(grow, limit) {
			return 0, busy("the server holds as many request bytes as it may (%d bytes "+
				"across requests in flight); try again shortly", bb.b.max)
		}
		bb.held += grow
	}
	n, err := bb.ReadCloser.Read(p)
	bb.read += int64(n)
	return n, err
}

// release gives back the reservation once the handler has returned.
func (bb *budgetedBody) release() {
	bb.b.give(bb.held)
	bb.held = 0
}

// budgeted makes h read its request body under the server's body budget.
func (s *Server) budgeted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		bb := &budgetedBody{ReadCloser: r.Body, b: s.bodies}
		defer bb.release()
		r.Body = bb
		h.ServeHTTP(w, r)
	})
}
