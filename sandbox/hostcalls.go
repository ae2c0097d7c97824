package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"io"

	"faas/task"
)

// Host calls that move guest-sized amounts of data (random_get, fd_write) are one call from
// the guest's side, and wazero checks the task's deadline only at function entries and loop
// headers: a single random_get of 1 GiB or an fd_write of a million iovecs would run (and
// fill memory) long past timeout_ms. So the sources and sinks behind those calls work in
// bounded chunks and check the deadline between them: a call past its deadline stops within
// one chunk's work, the task becomes a timeout, and wazero closes the guest at its next check.

// hostChunk is the most a host call moves between two deadline checks.
const hostChunk = 1 << 20

// interrupted reports whether the task must stop: its deadline passed (then the task is a
// timeout, recorded here), a limit was hit, or the caller gave up.
func (st *runState) interrupted() error {
	err := st.ctx.Err()
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		st.hit(task.KindTimeout, "")
		return errDeadline
	}
	return err
}

// randSource is a task's random_get: crypto/rand read straight into guest memory (no copy,
// no allocation) a chunk at a time.
type randSource struct{ st *runState }

func (r randSource) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if err := r.st.interrupted(); err != nil {
			return n, err // random_get answers EIO; the guest is closed at its next check
		}
		m, err := rand.Read(p[n:min(len(p), n+hostChunk)])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// chunkedWriter passes writes to w (stdout's cap, stderr's tail) a chunk at a time, with the
// deadline checked before each: fd_write calls it once per iovec, whatever their number.
type chunkedWriter struct {
	st *runState
	w  io.Writer
}

func (c chunkedWriter) Write(p []byte) (int, error) {
	n := 0
	for {
		if err := c.st.interrupted(); err != nil {
			return n, err
		}
		m, err := c.w.Write(p[n:min(len(p), n+hostChunk)])
		n += m
		if err != nil || n == len(p) {
			return n, err
		}
	}
}
