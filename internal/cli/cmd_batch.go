package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"faas/internal/cli/batch"
)

func (e *env) batchCmd() *cobra.Command {
	var (
		inputs                     string
		quiet, asJSON              bool
		concurrency, chunk, window int
	)
	cmd := &cobra.Command{
		Use:   "batch FUNCTION [--inputs FILE.jsonl]",
		Short: "Run a function on many inputs; prints one JSON line per input, in input order",
		Long: `Batch runs FUNCTION (a function_id or a name) once per input line of FILE.jsonl (stdin
when --inputs is left out or is "-") and prints one JSON line per input on stdout, in input
order, as the results come in.

Input lines:
  "text"                 a JSON string: the input is its UTF-8 bytes
  {"payload": "AAEC"}    an object with a base64 payload: the input is those bytes
  42, [1,2], {"a":1}     any other JSON value: the input is its JSON text
  (blank line)           skipped
Anything else stops the batch with an error naming the line (exit 2). A file is checked
whole before any task is submitted; from stdin, the inputs before the bad line still run
and are printed.

Output lines:
  {"index":0,"task_id":"...","status":"COMPLETED","result":"42","result_encoding":"utf-8"}
  {"index":1,...,"status":"FAILED","result":"exit: ...","result_encoding":"utf-8",
   "error":{"kind":"exit","message":"..."}}
index counts inputs from 0 (blank lines are not inputs). result is a UTF-8 string when the
result bytes are valid UTF-8, else their base64 ("result_encoding":"base64").
With --json, each line is instead the task as the server answered it (result in base64).

Inputs are submitted in chunks (--chunk) with bounded concurrency (--concurrency), and
results collected with long polls on sets of outstanding tasks. At most --window inputs are
held between reading and printing, so memory stays bounded however many inputs there are.
A progress bar with rate and ETA goes to stderr when stderr is a terminal (--quiet hides it).
Exit 1 when any task FAILED.

Ctrl-C (SIGINT or SIGTERM) stops submitting and waiting, leaves the bar where the batch
stopped, says how many tasks it submitted have not finished, and cancels them (they end
FAILED with kind cancelled); it then exits 130. A second Ctrl-C leaves them as they are and
exits at once.`,
		Example: `  printf '1\n2\n3\n' | faas batch double
  faas batch double --inputs inputs.jsonl > results.jsonl
  seq 100000 | faas batch double --quiet | jq -r .result
  faas batch wordcount --inputs docs.jsonl --concurrency 8 --chunk 1000`,
		Args: exactArgs("FUNCTION"),
	}
	conn := e.serverFlags(cmd.Flags())
	fs := cmd.Flags()
	fs.StringVar(&inputs, "inputs", "", `JSON-lines file of inputs (default stdin; "-" is stdin)`)
	fs.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	fs.BoolVar(&asJSON, "json", false, "print the server's JSON answer for each task instead (one line per input, in input order)")
	fs.IntVar(&concurrency, "concurrency", 4, "submission requests in flight at once")
	fs.IntVar(&chunk, "chunk", 500, "inputs per submission request (1 to 10000)")
	fs.IntVar(&window, "window", 4096, "most inputs held between reading and printing (bounds memory)")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		switch {
		case concurrency < 1:
			return usagef("--concurrency must be at least 1, got %d", concurrency)
		case chunk < 1 || chunk > 10000:
			return usagef("--chunk must be between 1 and 10000, got %d", chunk)
		case window < chunk:
			return usagef("--window (%d) must be at least --chunk (%d)", window, chunk)
		}
		in, name, total := e.stdin, "stdin", -1
		if inputs != "" && inputs != "-" {
			f, err := os.Open(inputs)
			if err != nil {
				return usagef("%v", err)
			}
			defer f.Close()
			in, name = f, inputs
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				// Check the whole file first: a bad line then submits nothing, and the
				// progress bar knows its total.
				n, err := batch.Count(f)
				if err != nil {
					return inputError(name, err)
				}
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					return err
				}
				total = n
			}
		}
		ctx := cmd.Context()
		c, err := conn.client()
		if err != nil {
			return err
		}
		fnID, err := resolveFunction(ctx, c, args[0])
		if err != nil {
			return err
		}
		hard, stopHard := afterInterrupt(ctx)
		defer stopHard()
		cfg := batch.Config{Chunk: chunk, Concurrency: concurrency, Window: window, JSON: asJSON, SubmitContext: hard}
		var bar *progressbar.ProgressBar
		out := e.stdout
		if !quiet && isTerminal(e.stderr) {
			bar = newBar(e.stderr, total)
			cfg.Progress = bar
			if isTerminal(e.stdout) {
				// Both on one terminal: the bar's line is erased before each write of
				// result lines, and drawn again under them at its next update.
				out = &barClearing{w: e.stdout, bar: bar}
			}
		}
		sum, err := batch.Run(ctx, c, fnID, in, out, cfg)
		if bar != nil {
			if err == nil {
				_ = bar.Finish()
			} else {
				// Where the batch really stopped, not 100%, nor the last throttled drawing:
				// draw the count once more (after the throttle interval, which would skip
				// it), then freeze the bar.
				time.Sleep(barThrottle)
				_ = bar.RenderBlank()
				_ = bar.Exit()
			}
			fmt.Fprintln(e.stderr)
		}
		if ctx.Err() != nil && len(sum.Unfinished) > 0 && hard.Err() == nil {
			return e.cancelUnfinished(hard, c, sum.Unfinished)
		}
		if err != nil {
			return inputError(name, err)
		}
		if sum.Failed > 0 {
			fmt.Fprintf(e.stderr, "faas batch: %d of %d tasks FAILED\n", sum.Failed, sum.Inputs)
			return silent(ExitFailed)
		}
		return nil
	})
	return cmd
}

// inputError turns a bad input line into a usage error naming the file and line.
func inputError(name string, err error) error {
	var le *batch.LineError
	if errors.As(err, &le) {
		return &exitError{code: ExitUsage, err: fmt.Errorf("%s: %v", name, le)}
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// barClearing writes result lines to a terminal that also shows the progress bar: it
// erases the bar's line, then writes whole lines only (a buffered writer may flush mid-line;
// the rest waits for its newline), so the bar, drawn again at its next update, always starts
// on a line of its own. The batch printer calls Write and the bar's Add from one goroutine,
// and the bar draws only from Add (newBar starts no spinner goroutine): they never interleave.
type barClearing struct {
	w       io.Writer
	bar     *progressbar.ProgressBar
	pending []byte // the start of a line not yet ended
}

func (b *barClearing) Write(p []byte) (int, error) {
	end := bytes.LastIndexByte(p, '\n')
	if end < 0 {
		b.pending = append(b.pending, p...)
		return len(p), nil
	}
	_ = b.bar.Clear()
	if len(b.pending) > 0 {
		if _, err := b.w.Write(b.pending); err != nil {
			return 0, err
		}
		b.pending = b.pending[:0]
	}
	if _, err := b.w.Write(p[:end+1]); err != nil {
		return 0, err
	}
	b.pending = append(b.pending, p[end+1:]...)
	return len(p), nil
}

// barThrottle is the least time between two drawings of the bar.
const barThrottle = 100 * time.Millisecond

// newBar draws on w. Its clock starts now, before any task is submitted, so the first
// rate shown is tasks done over time really spent (started at the first finished task, it
// showed hundreds of thousands of tasks/s). It draws only when told of progress.
func newBar(w io.Writer, total int) *progressbar.ProgressBar {
	return progressbar.NewOptions64(int64(total),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("tasks"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("tasks"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(barThrottle),
		progressbar.OptionFullWidth(),
	)
}
