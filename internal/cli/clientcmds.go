package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"faas/client"
)

// The longest wait one request asks of the server (it caps waits at 30 s by default).
const maxPoll = 25 * time.Second

func (e *env) registerCmd() *cobra.Command {
	var (
		lim    client.Limits
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "register NAME FILE.wasm",
		Short: "Register a Wasm module as a function; prints its function_id",
		Long: `Register uploads FILE.wasm (a WASI preview1 command module; "-" reads it from stdin)
as a new function called NAME and prints the new function_id, nothing else, on stdout.
Registering a name again makes a new function: the name then refers to the newest.
Limit flags left out take the server's defaults.`,
		Example: `  faas register double samples/double/double_wat.wasm
  faas register slow samples/sleep/sleep.wasm --timeout-ms 60000 --memory-mb 16
  id=$(faas register double double.wasm) && faas exec "$id" --input 21 --wait`,
		Args: exactArgs("NAME", "FILE.wasm"),
	}
	server := e.serverFlag(cmd.Flags())
	fs := cmd.Flags()
	fs.Int64Var(&lim.TimeoutMs, "timeout-ms", 0, "wall-clock limit of one run, in ms (server default 10000)")
	fs.Int64Var(&lim.MemoryMB, "memory-mb", 0, "linear memory limit, in MiB (server default 64)")
	fs.Int64Var(&lim.StdoutBytes, "stdout-bytes", 0, "largest result kept, in bytes (server default 4 MiB)")
	fs.Int64Var(&lim.StdinBytes, "stdin-bytes", 0, "largest input accepted, in bytes (server default 4 MiB)")
	fs.BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		name, file := args[0], args[1]
		for _, f := range []struct {
			flag string
			v    int64
		}{{"timeout-ms", lim.TimeoutMs}, {"memory-mb", lim.MemoryMB}, {"stdout-bytes", lim.StdoutBytes}, {"stdin-bytes", lim.StdinBytes}} {
			if f.v < 0 {
				return usagef("--%s must not be negative, got %d", f.flag, f.v)
			}
		}
		wasm, err := e.readInput(file)
		if err != nil {
			return usagef("reading the module: %v", err)
		}
		var limits *client.Limits
		if lim != (client.Limits{}) {
			limits = &lim
		}
		id, err := client.New(server()).Register(cmd.Context(), name, wasm, limits)
		if err != nil {
			return err
		}
		if asJSON {
			return e.printJSON(map[string]string{"function_id": id})
		}
		_, err = fmt.Fprintln(e.stdout, id)
		return err
	})
	return cmd
}

// readInput reads a file, or stdin for "-".
func (e *env) readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(e.stdin)
	}
	return os.ReadFile(name)
}

func (e *env) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

func (e *env) printRaw(raw json.RawMessage) error {
	_, err := fmt.Fprintf(e.stdout, "%s\n", raw)
	return err
}

// resolveFunction turns a function id or name (the newest function with that name) into a
// function id.
func resolveFunction(ctx context.Context, c *client.Client, idOrName string) (string, error) {
	f, err := c.Function(ctx, idOrName)
	if err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
			return "", &exitError{code: ExitServer, err: fmt.Errorf("no function with id or name %q (see 'faas functions')", idOrName)}
		}
		return "", err
	}
	return f.ID, nil
}

// execute runs FUNCTION (an id or a name) on in. An id-shaped argument is tried as an id
// first, saving a round trip; a name is resolved to its newest function first.
func execute(ctx context.Context, c *client.Client, fn string, in []byte) (string, error) {
	if looksLikeUUID(fn) {
		id, err := c.Execute(ctx, fn, in)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
			return id, err
		}
		// Not a known id: maybe a name that looks like one.
	}
	fnID, err := resolveFunction(ctx, c, fn)
	if err != nil {
		return "", err
	}
	return c.Execute(ctx, fnID, in)
}

func looksLikeUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func (e *env) execCmd() *cobra.Command {
	var (
		input, inputFile string
		wait, asJSON     bool
		timeout          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "exec FUNCTION [--input STR | --input-file F] [--wait] [--timeout DURATION]",
		Short: "Run a function on an input; prints the task_id (with --wait, the result)",
		Long: `Exec runs FUNCTION (a function_id or a registered name: the newest with that name) on
an input: --input STR, or --input-file F ("-" for stdin), else an empty input.

It prints the task_id on stdout. With --wait it waits for the task to end instead and prints
the result bytes exactly as the function wrote them; if the task FAILED it prints
"kind: message" on stderr and exits 1. --timeout bounds the whole command: when it runs out
while waiting, the task keeps running, its id and status go to stderr and the exit code is 4.`,
		Example: `  faas exec double --input 21              # prints a task_id
  faas exec double --input 21 --wait       # prints 42
  faas exec wordcount --input-file README.md --wait --timeout 30s
  faas exec double --input 21 --wait --json`,
		Args: exactArgs("FUNCTION"),
	}
	server := e.serverFlag(cmd.Flags())
	fs := cmd.Flags()
	fs.StringVar(&input, "input", "", "the input, as a string")
	fs.StringVar(&inputFile, "input-file", "", `read the input from this file ("-" for stdin)`)
	fs.BoolVar(&wait, "wait", false, "wait for the task to end and print its result")
	fs.DurationVar(&timeout, "timeout", 0, "give up after this long, e.g. 30s (default: no limit)")
	fs.BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if timeout < 0 {
			return usagef("--timeout must not be negative, got %v", timeout)
		}
		if cmd.Flags().Changed("input") && cmd.Flags().Changed("input-file") {
			return usagef("give --input or --input-file, not both")
		}
		in := []byte(input)
		if cmd.Flags().Changed("input-file") {
			b, err := e.readInput(inputFile)
			if err != nil {
				return usagef("reading the input: %v", err)
			}
			in = b
		}
		ctx := cmd.Context()
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		c := client.New(server())
		id, err := execute(ctx, c, args[0], in)
		if err != nil {
			return e.timedOut(ctx, err, timeout, "")
		}
		if !wait {
			if asJSON {
				return e.printJSON(map[string]string{"task_id": id})
			}
			_, err := fmt.Fprintln(e.stdout, id)
			return err
		}
		t, err := waitTask(ctx, c, id, 0)
		if err != nil {
			return e.timedOut(ctx, err, timeout, id)
		}
		return e.printResult(t, asJSON)
	})
	return cmd
}

// timedOut reports a --timeout that ran out (exit 4) or passes err on.
func (e *env) timedOut(ctx context.Context, err error, timeout time.Duration, taskID string) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	if taskID == "" {
		return &exitError{code: ExitServer, err: fmt.Errorf("no answer from the server within --timeout %v", timeout)}
	}
	return &exitError{code: ExitNotFinished, err: fmt.Errorf("task %s has not finished after %v; read it later with 'faas result %s'", taskID, timeout, taskID)}
}

// waitTask long-polls a task until it is terminal, ctx ends, or limit (if > 0) runs out; it
// then returns the task as last seen.
func waitTask(ctx context.Context, c *client.Client, id string, limit time.Duration) (client.Task, error) {
	var deadline time.Time
	if limit > 0 {
		deadline = time.Now().Add(limit)
	}
	for {
		poll := maxPoll
		if d, ok := ctx.Deadline(); ok {
			poll = min(poll, time.Until(d))
		}
		if !deadline.IsZero() {
			poll = min(poll, time.Until(deadline))
		}
		t, err := c.Result(ctx, id, max(poll, time.Millisecond))
		if err != nil {
			return t, err
		}
		if t.Terminal() || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return t, nil
		}
	}
}

// printResult prints a terminal task's result (or the JSON answer) and returns the exit
// status: 1 with "kind: message" on stderr if it FAILED.
func (e *env) printResult(t client.Task, asJSON bool) error {
	if asJSON {
		if err := e.printRaw(t.Raw); err != nil {
			return err
		}
	}
	switch t.Status {
	case client.StatusCompleted:
		if !asJSON {
			if _, err := e.stdout.Write(t.Result); err != nil {
				return err
			}
		}
		return nil
	case client.StatusFailed:
		msg := string(t.Result)
		if t.Error != nil {
			msg = t.Error.Error()
		}
		fmt.Fprintln(e.stderr, msg)
		return silent(ExitFailed)
	default:
		return &exitError{code: ExitNotFinished, err: fmt.Errorf("task %s is %s, not finished yet; ask again, or use --wait DURATION", t.TaskID, t.Status)}
	}
}

func (e *env) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status TASK_ID",
		Short: "Print a task's status: QUEUED, RUNNING, COMPLETED or FAILED",
		Long: `Status prints the status word of a task on stdout: QUEUED, RUNNING, COMPLETED or FAILED.
It exits 0 whatever the status (a FAILED status is an answer, not an error); use
'faas result' to read the result or the failure.`,
		Example: `  faas status 3f0c9a52-8d3e-4c8e-9b61-0b5d2e4f7a10
  faas status "$(faas exec double --input 21)" --json`,
		Args: exactArgs("TASK_ID"),
	}
	server := e.serverFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		t, err := client.New(server()).Status(cmd.Context(), args[0])
		if err != nil {
			return notFoundTask(err, args[0])
		}
		if asJSON {
			return e.printRaw(t.Raw)
		}
		_, err = fmt.Fprintln(e.stdout, t.Status)
		return err
	})
	return cmd
}

// notFoundTask rewords a 404 about a task id.
func notFoundTask(err error, id string) error {
	var ae *client.APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
		return &exitError{code: ExitServer, err: fmt.Errorf("no task with id %q (unknown, malformed or expired)", id)}
	}
	return err
}

func (e *env) resultCmd() *cobra.Command {
	var (
		asJSON bool
		wait   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "result TASK_ID [--wait DURATION]",
		Short: "Print a COMPLETED task's result bytes",
		Long: `Result prints the result bytes of a COMPLETED task on stdout, exactly as the function
wrote them. If the task FAILED it prints "kind: message" on stderr and exits 1. If the task
has not finished (QUEUED or RUNNING) it says so on stderr and exits 4; --wait DURATION
waits up to that long for it to finish first.`,
		Example: `  faas result 3f0c9a52-8d3e-4c8e-9b61-0b5d2e4f7a10
  faas result "$id" --wait 10s
  faas result "$id" --json`,
		Args: exactArgs("TASK_ID"),
	}
	server := e.serverFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the task to finish, e.g. 10s")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if wait < 0 {
			return usagef("--wait must not be negative, got %v", wait)
		}
		c := client.New(server())
		var (
			t   client.Task
			err error
		)
		if wait > 0 {
			t, err = waitTask(cmd.Context(), c, args[0], wait)
		} else {
			t, err = c.Result(cmd.Context(), args[0], 0)
		}
		if err != nil {
			return notFoundTask(err, args[0])
		}
		return e.printResult(t, asJSON)
	})
	return cmd
}

func (e *env) functionsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "functions",
		Short: "List registered functions, newest first",
		Long:  `Functions lists the registered functions, newest first: id, name, module size, creation time.`,
		Example: `  faas functions
  faas functions --json`,
		Args: exactArgs(),
	}
	server := e.serverFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		fns, err := client.New(server()).Functions(cmd.Context())
		if err != nil {
			return err
		}
		if asJSON {
			return e.printJSON(map[string]any{"functions": fns})
		}
		for _, f := range fns {
			fmt.Fprintf(e.stdout, "%s\t%s\t%d\t%s\n", f.ID, f.Name, f.ModuleSize, f.CreatedAt.Format(time.RFC3339))
		}
		return nil
	})
	return cmd
}
