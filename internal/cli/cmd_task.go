package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"faas/client"
)

// The longest wait one request asks of the server (it caps waits at 30 s by default).
const maxPoll = 25 * time.Second

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
			// On a terminal the shell's prompt then starts on a line of its own; redirected,
			// stdout stays the result byte for byte.
			if n := len(t.Result); n > 0 && t.Result[n-1] != '\n' && isTerminal(e.stdout) {
				fmt.Fprintln(e.stdout)
			}
		}
		return nil
	case client.StatusFailed:
		msg := string(t.Result)
		if t.Error != nil {
			msg = t.Error.Error()
		}
		fmt.Fprintln(e.stderr, msg)
		if !asJSON && len(t.Stderr) > 0 {
			fmt.Fprintf(e.stderr, "stderr of the function (last %d bytes):\n%s\n", len(t.Stderr), printable(t.Stderr))
		}
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
	conn := e.serverFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := conn.client()
		if err != nil {
			return err
		}
		t, err := c.Status(cmd.Context(), args[0])
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
	conn := e.serverFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the task to finish, e.g. 10s")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if wait < 0 {
			return usagef("--wait must not be negative, got %v", wait)
		}
		c, err := conn.client()
		if err != nil {
			return err
		}
		var t client.Task
		if wait > 0 {
			t, err = e.waitTaskHinted(cmd.Context(), c, args[0], wait)
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
