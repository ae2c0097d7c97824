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
	"context"
	"encoding/base64"
	"io"
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
	// SubmitContext, if set, is the context of the submission requests instead of Run's: a
	// request in flight when Run's context ends is then answered, so that every task the
	// server accepted is in Summary.Unfinished (and can be cancelled), none unknown.
	SubmitContext context.Context
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
	// Unfinished are the ids of the tasks submitted and not seen terminal, oldest first:
	// empty unless Run stopped early (its context ended, or an error).
	Unfinished []string
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
	CPUUnits       uint64        `json:"cpu_units"` // the task's guest code: function entries and loop iterations
	// Stderr is the function's stderr tail, when it wrote any, encoded like Result.
	Stderr         string `json:"stderr,omitempty"`
	StderrEncoding string `json:"stderr_encoding,omitempty"`
}

// NewLine builds the output line of input index from its terminal task.
func NewLine(index int, t client.Task) Line {
	l := Line{Index: index, TaskID: t.TaskID, Status: t.Status, CPUUnits: t.CPUUnits}
	res := t.Result
	if t.Error != nil {
		l.Error = t.Error
		if len(res) == 0 {
			res = []byte(t.Error.Error())
		}
	}
	l.Result, l.ResultEncoding = encodeBytes(res)
	if len(t.Stderr) > 0 {
		l.Stderr, l.StderrEncoding = encodeBytes(t.Stderr)
	}
	return l
}

// encodeBytes gives b as a string for a JSON line: the text itself when it is valid UTF-8,
// else its standard base64, with the encoding's name.
func encodeBytes(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), "utf-8"
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
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
	r.mu.Lock()
	r.sum.Unfinished = append([]string(nil), r.outstanding...)
	r.mu.Unlock()
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
