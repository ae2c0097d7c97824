package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"faas/client"
)

// This file is the end of the pipeline: the printer writes each input's line in input order
// and gives its window token back.

// print writes lines in input order as the head of the window completes.
func (r *runner) print(ctx context.Context, out io.Writer) error {
	w := bufio.NewWriterSize(out, 64<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for head := 0; ; {
		r.mu.Lock()
		if r.total >= 0 && head == r.total {
			r.mu.Unlock()
			r.sum.Inputs = head
			return w.Flush()
		}
		s := &r.slots[head%len(r.slots)]
		if !s.done {
			r.mu.Unlock()
			if err := w.Flush(); err != nil {
				return fmt.Errorf("writing results: %w", err)
			}
			select {
			case <-r.printed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		t := s.task
		*s = slot{}
		r.mu.Unlock()

		if err := r.printOne(w, enc, head, t); err != nil {
			return fmt.Errorf("writing results: %w", err)
		}
		switch t.Status {
		case "COMPLETED":
			r.sum.Completed++
		case "FAILED":
			r.sum.Failed++
		}
		<-r.tokens
		if r.cfg.Progress != nil {
			_ = r.cfg.Progress.Add(1)
		}
		head++
	}
}

// printOne writes the output line of input index: a Line, or with Config.JSON the server's
// JSON answer for the task, on one line.
func (r *runner) printOne(w *bufio.Writer, enc *json.Encoder, index int, t client.Task) error {
	if !r.cfg.JSON {
		return enc.Encode(NewLine(index, t))
	}
	if len(t.Raw) == 0 {
		return enc.Encode(t)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, t.Raw); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
