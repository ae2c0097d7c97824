// Package batch runs many inputs through one function and prints their outcomes in input
// order, in bounded memory.
//
// The pipeline is a window of at most Config.Window inputs that have been read but not yet
// printed:
//
//	reader ──items──► chunker ──chunks──► submitters (Concurrency, ExecuteBatch)
//	                                          │ task ids
//	                                          ▼
//	printer ◄──slots── waiter (long-polls the oldest outstanding ids with client.Wait)
//
// The reader takes a window token before it reads ahead; the printer gives it back once the
// input's line is printed. So memory holds at most Window inputs and results, however long
// the input is, and a slow task at the head of the window stops read-ahead rather than
// growing a buffer.
package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"faas/client"
	"faas/task"
)

// Client is what a batch needs from the REST client (*client.Client has it).
type Client interface {
	ExecuteBatch(ctx context.Context, functionID string, inputs [][]byte) ([]string, error)
	Wait(ctx context.Context, taskIDs []string, wait time.Duration) ([]client.Task, error)
}

// Progress is told about each printed line (a *progressbar.ProgressBar fits).
type Progress interface {
	Add(n int) error
}

// Config tunes a batch. Every zero value means the documented default.
type Config struct {
	// Chunk is the most inputs one submission carries; default 500.
	Chunk int
	// ChunkBytes is the most input bytes one submission carries (an input larger than that
	// goes alone); default 16 MiB, well under the server's 64 MiB per request.
	ChunkBytes int
	// Concurrency is the most submissions in flight at once; default 4.
	Concurrency int
	// Window is the most inputs read but not yet printed; default 4096, at least Chunk.
	Window int
	// WaitIDs is the most task ids one long-poll asks about; default 500.
	WaitIDs int
	// Waiters is the most long-polls in flight at once, each on its own ids; default 1
	// (more waiters mostly make the server read the same unfinished records more often).
	Waiters int
	// MinPollGap spaces one waiter's polls while results trickle in, so that each poll
	// brings back a batch rather than a few; default 10ms.
	MinPollGap time.Duration
	// Poll is the long-poll duration of one wait request; default 10s (the server caps it).
	Poll time.Duration
	// Linger is how long a partial chunk waits for more inputs before it is sent; default 20ms.
	Linger time.Duration
	// Progress, if set, is told about each printed line.
	Progress Progress
	// JSON prints, for each input in input order, the task as the server answered it (one
	// JSON object per line, result in base64) instead of a Line (the CLI's --json).
	JSON bool
}

func (c Config) withDefaults() Config {
	if c.Chunk <= 0 {
		c.Chunk = 500
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = 16 << 20
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Window <= 0 {
		c.Window = 4096
	}
	if c.Window < c.Chunk {
		c.Window = c.Chunk
	}
	if c.WaitIDs <= 0 {
		c.WaitIDs = 500
	}
	if c.Waiters <= 0 {
		c.Waiters = 1
	}
	if c.MinPollGap <= 0 {
		c.MinPollGap = 10 * time.Millisecond
	}
	if c.Poll <= 0 {
		c.Poll = 10 * time.Second
	}
	if c.Linger <= 0 {
		c.Linger = 20 * time.Millisecond
	}
	return c
}

// Summary counts what a batch did.
type Summary struct {
	Inputs    int // inputs read (and printed, when Run returns no error)
	Completed int
	Failed    int
}

// Line is one output line. Result is the result bytes as a UTF-8 string when they are
// valid UTF-8, else their standard base64; ResultEncoding says which.
type Line struct {
	Index          int           `json:"index"`
	TaskID         string        `json:"task_id"`
	Status         string        `json:"status"`
	Result         string        `json:"result"`
	ResultEncoding string        `json:"result_encoding"`
	Error          *task.Failure `json:"error,omitempty"`
}

// NewLine builds the output line of input index from its terminal task.
func NewLine(index int, t client.Task) Line {
	l := Line{Index: index, TaskID: t.TaskID, Status: t.Status}
	res := t.Result
	if t.Error != nil {
		l.Error = t.Error
		if len(res) == 0 {
			res = []byte(t.Error.Error())
		}
	}
	if utf8.Valid(res) {
		l.Result, l.ResultEncoding = string(res), "utf-8"
	} else {
		l.Result, l.ResultEncoding = base64.StdEncoding.EncodeToString(res), "base64"
	}
	return l
}

// Run reads inputs from in (one per line, see ParseLine), runs each through functionID and
// writes one JSON line per input to out, in input order. It returns when every input read
// is printed. A bad line stops reading: the inputs before it are still run and printed, and
// Run returns a *LineError.
func Run(ctx context.Context, c Client, functionID string, in io.Reader, out io.Writer, cfg Config) (Summary, error) {
	cfg = cfg.withDefaults()
	r := &runner{
		cfg:     cfg,
		c:       c,
		fn:      functionID,
		slots:   make([]slot, cfg.Window),
		tokens:  make(chan struct{}, cfg.Window),
		total:   -1,
		byID:    make(map[string]int, cfg.Window),
		claimed: make(map[string]bool, cfg.Window),
		printed: make(chan struct{}, 1),
		changed: make(chan struct{}),
	}
	g, gctx := errgroup.WithContext(ctx)
	items := make(chan item)
	chunks := make(chan []item)
	// The reader may be stuck in a Read that no context interrupts (a terminal, a pipe):
	// on cancellation Run returns without it, and it ends at its next Read or send.
	readDone := make(chan error, 1)
	go func() { readDone <- r.read(gctx, in, items) }()
	g.Go(func() error {
		select {
		case err := <-readDone:
			return err
		case <-gctx.Done():
			return gctx.Err()
		}
	})
	g.Go(func() error { return r.chunk(gctx, items, chunks) })
	var subs sync.WaitGroup
	for range cfg.Concurrency {
		subs.Add(1)
		g.Go(func() error {
			defer subs.Done()
			return r.submit(gctx, chunks)
		})
	}
	g.Go(func() error {
		subs.Wait()
		r.mu.Lock()
		r.submitted = true
		r.broadcastLocked()
		r.mu.Unlock()
		return nil
	})
	for range cfg.Waiters {
		g.Go(func() error { return r.wait(gctx) })
	}
	g.Go(func() error { return r.print(gctx, out) })
	err := g.Wait()
	if err == nil {
		err = r.readErr
	}
	return r.sum, err
}

type item struct {
	index int
	input []byte
}

type slot struct {
	taskID string
	task   client.Task
	done   bool
}

type runner struct {
	cfg    Config
	c      Client
	fn     string
	tokens chan struct{} // window tokens: one per input read and not yet printed

	mu          sync.Mutex
	slots       []slot          // input i lives in slots[i%Window] while it is in the window
	total       int             // inputs read, once the reader stopped; -1 before
	readErr     error           // why the reader stopped early (a *LineError), if it did
	submitted   bool            // every chunk was submitted
	outstanding []string        // submitted, not yet terminal, oldest first
	byID        map[string]int  // outstanding task id → input index
	claimed     map[string]bool // outstanding ids a waiter is asking about now
	changed     chan struct{}   // closed (and replaced) when waiters have something new

	printed chan struct{} // wakes the printer

	sum Summary // owned by the printer until Run returns
}

// broadcastLocked wakes every waiter; r.mu is held.
func (r *runner) broadcastLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

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

// submit sends chunks with ExecuteBatch and hands the task ids to the waiter.
func (r *runner) submit(ctx context.Context, chunks <-chan []item) error {
	for batch := range chunks {
		inputs := make([][]byte, len(batch))
		for i, it := range batch {
			inputs[i] = it.input
		}
		ids, err := r.c.ExecuteBatch(ctx, r.fn, inputs)
		if err != nil {
			return fmt.Errorf("submitting inputs %d to %d: %w", batch[0].index, batch[len(batch)-1].index, err)
		}
		if len(ids) != len(batch) {
			return fmt.Errorf("submitting inputs %d to %d: the server returned %d task ids for %d inputs",
				batch[0].index, batch[len(batch)-1].index, len(ids), len(batch))
		}
		r.mu.Lock()
		for i, it := range batch {
			r.slots[it.index%len(r.slots)] = slot{taskID: ids[i]}
			r.byID[ids[i]] = it.index
			r.outstanding = append(r.outstanding, ids[i])
		}
		r.broadcastLocked()
		r.mu.Unlock()
	}
	return nil
}

// wait long-polls the oldest outstanding task ids that no other waiter is asking about, and
// files terminal tasks in their slots. Several waiters run at once, on disjoint ids.
func (r *runner) wait(ctx context.Context) error {
	failures := 0
	// Ask about twice as many ids as the last poll brought back: every id asked
	// about costs the server a record read, finished or not.
	ask := r.cfg.WaitIDs
	var last time.Time
	for {
		if gap := time.Since(last); gap < r.cfg.MinPollGap && ask < r.cfg.WaitIDs {
			select {
			case <-time.After(r.cfg.MinPollGap - gap):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		r.mu.Lock()
		var ids []string
		for _, id := range r.outstanding {
			if !r.claimed[id] {
				ids = append(ids, id)
				if len(ids) == ask {
					break
				}
			}
		}
		if len(ids) == 0 {
			if len(r.outstanding) == 0 && r.submitted {
				r.mu.Unlock()
				return nil
			}
			changed := r.changed
			r.mu.Unlock()
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for _, id := range ids {
			r.claimed[id] = true
		}
		r.mu.Unlock()

		last = time.Now()
		tasks, err := r.c.Wait(ctx, ids, r.cfg.Poll)
		r.file(ids, tasks)
		ask = min(max(2*len(tasks), 64), r.cfg.WaitIDs)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Waiting is idempotent: ride out a short outage before giving up.
			if failures < 5 && retryable(err) {
				failures++
				select {
				case <-time.After(time.Duration(100<<failures) * time.Millisecond):
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return fmt.Errorf("waiting for results: %w", err)
		}
		failures = 0
	}
}

// file releases a waiter's claim on ids and files the terminal tasks among tasks.
func (r *runner) file(ids []string, tasks []client.Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		delete(r.claimed, id)
	}
	n := 0
	for _, t := range tasks {
		if !t.Terminal() {
			continue
		}
		idx, ok := r.byID[t.TaskID]
		if !ok {
			continue
		}
		delete(r.byID, t.TaskID)
		t.Raw = nil // not printed; do not keep it
		r.slots[idx%len(r.slots)] = slot{taskID: t.TaskID, task: t, done: true}
		n++
	}
	if n > 0 {
		keep := r.outstanding[:0]
		for _, id := range r.outstanding {
			if _, ok := r.byID[id]; ok {
				keep = append(keep, id)
			}
		}
		clear(r.outstanding[len(keep):])
		r.outstanding = keep
		wake(r.printed)
	}
	r.broadcastLocked() // released ids (and maybe the last of them) for the other waiters
}

func retryable(err error) bool {
	if errors.Is(err, client.ErrUnreachable) {
		return true
	}
	var ae *client.APIError
	return errors.As(err, &ae) && (ae.StatusCode == http.StatusServiceUnavailable || ae.StatusCode >= 500)
}

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
