package batch

import (
	"context"
	"errors"
	"io"
	"time"
)

// This file is the front of the pipeline: the reader takes a window token per input and
// the chunker groups inputs into ExecuteBatch requests.

// read parses inputs and hands them on, taking a window token for each.
func (r *runner) read(ctx context.Context, in io.Reader, items chan<- item) error {
	defer close(items)
	lr := newLineReader(in)
	n := 0
	finish := func(err error) error {
		r.mu.Lock()
		r.total, r.readErr = n, err
		r.mu.Unlock()
		wake(r.printed)
		return nil
	}
	for {
		input, _, err := lr.next()
		if err == io.EOF {
			return finish(nil)
		}
		var le *LineError
		if errors.As(err, &le) {
			return finish(err) // run and print what came before, then report the line
		}
		if err != nil {
			return err
		}
		select {
		case r.tokens <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case items <- item{index: n, input: input}:
		case <-ctx.Done():
			return ctx.Err()
		}
		n++
	}
}

// chunk groups items into submissions of up to Chunk inputs; a partial chunk goes after
// Linger, so a slow producer (or a full window) never holds inputs back.
func (r *runner) chunk(ctx context.Context, items <-chan item, chunks chan<- []item) error {
	defer close(chunks)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var carry *item // an input that did not fit in the previous chunk's bytes
	for {
		var first item
		if carry != nil {
			first, carry = *carry, nil
		} else {
			select {
			case it, ok := <-items:
				if !ok {
					return nil
				}
				first = it
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		batch := append(make([]item, 0, r.cfg.Chunk), first)
		size := len(first.input)
		timer.Reset(r.cfg.Linger)
		closed := false
	fill:
		for len(batch) < r.cfg.Chunk {
			select {
			case it, ok := <-items:
				if !ok {
					closed = true
					break fill
				}
				if size+len(it.input) > r.cfg.ChunkBytes {
					carry = &it
					break fill
				}
				batch = append(batch, it)
				size += len(it.input)
			case <-timer.C:
				break fill
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		timer.Stop()
		select {
		case chunks <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if closed && carry == nil {
			return nil
		}
		if closed {
			select {
			case chunks <- []item{*carry}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}
