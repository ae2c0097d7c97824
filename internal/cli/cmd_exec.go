package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

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
	conn := e.serverFlags(cmd.Flags())
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
		c, err := conn.client()
		if err != nil {
			return err
		}
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
		t, err := e.waitTaskHinted(ctx, c, id, 0)
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
