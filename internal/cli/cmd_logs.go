package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"faas/client"
)

func (e *env) logsCmd() *cobra.Command {
	var (
		follow, failed, asJSON bool
		since                  time.Duration
		limit                  int
	)
	cmd := &cobra.Command{
		Use:   "logs FUNCTION [--follow] [--since 10m] [--failed] [--json]",
		Short: "Print the outcomes and stderr of a function's tasks as they finish",
		Long: `Logs prints one line per finished task of FUNCTION (a function_id, or a name: the newest
function with that name): when it finished, the task id, its status, the failure kind, how
long it ran, and the first line of what it wrote on stderr (control characters escaped).
The server keeps about the last 1,000 outcomes of each function for 24 hours.

--follow keeps printing outcomes as they are recorded until interrupted (Ctrl-C; exit 0).
--since 10m shows only the last ten minutes (without it: the last --limit outcomes).
--failed shows FAILED tasks only. --json prints one JSON object per line with every field and
the whole stderr tail kept (UTF-8 text, or base64 when it is not: stderr_encoding says which).`,
		Example: `  faas logs double
  faas logs double --follow --failed
  faas logs double --since 10m --json`,
		Args: exactArgs("FUNCTION"),
	}
	conn := e.serverFlags(cmd.Flags())
	fs := cmd.Flags()
	fs.BoolVarP(&follow, "follow", "f", false, "keep printing outcomes as they are recorded")
	fs.DurationVar(&since, "since", 0, "only outcomes of the last DURATION, e.g. 10m (at most 24h)")
	fs.BoolVar(&failed, "failed", false, "only FAILED tasks")
	fs.BoolVar(&asJSON, "json", false, "one JSON object per line, with the whole stderr tail")
	fs.IntVar(&limit, "limit", 100, "at most this many past outcomes (1 to 1000)")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if since < 0 || since > 24*time.Hour {
			return usagef("--since must be between 0 and 24h, got %v", since)
		}
		if limit < 1 || limit > 1000 {
			return usagef("--limit must be 1 to 1000, got %d", limit)
		}
		c, err := conn.client()
		if err != nil {
			return err
		}
		o := client.LogOptions{Since: since, Failed: failed, Limit: limit}
		print := func(le client.LogEntry) error {
			if asJSON {
				return e.printJSON(newLogLine(le))
			}
			_, err := fmt.Fprintln(e.stdout, logText(le))
			return err
		}
		if !follow {
			entries, err := c.Logs(cmd.Context(), args[0], o)
			if err != nil {
				return notFoundFunction(err, args[0])
			}
			for _, le := range entries {
				if err := print(le); err != nil {
					return err
				}
			}
			return nil
		}
		err = c.FollowLogs(cmd.Context(), args[0], o, func(le client.LogEntry, _ json.RawMessage) error { return print(le) })
		if errors.Is(err, context.Canceled) {
			return nil // Ctrl-C is how following ends
		}
		return notFoundFunction(err, args[0])
	})
	return cmd
}

// notFoundFunction says which function was not found.
func notFoundFunction(err error, fn string) error {
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Code == "not_found" {
		return &exitError{code: ExitServer, err: fmt.Errorf("no function %q: see 'faas functions'", fn)}
	}
	return err
}

// logText is one line of faas logs: time, task id, status, kind, duration, first stderr
// line (or the failure's message when there is no stderr).
func logText(le client.LogEntry) string {
	kind := le.Kind
	if kind == "" {
		kind = "-"
	}
	first := le.Stderr
	if i := bytes.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	detail := printable(first)
	if len(first) == 0 && le.Message != "" {
		detail = printable([]byte(le.Message))
	}
	return fmt.Sprintf("%s  %s  %-9s  %-12s  %6dms  %s", le.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
		le.TaskID, le.Status, kind, le.DurationMs, detail)
}

// logLine is one line of faas logs --json.
type logLine struct {
	Time           time.Time `json:"time"`
	TaskID         string    `json:"task_id"`
	FunctionID     string    `json:"function_id"`
	Status         string    `json:"status"`
	Kind           string    `json:"kind,omitempty"`
	Message        string    `json:"message,omitempty"`
	DurationMs     int64     `json:"duration_ms"`
	Worker         string    `json:"worker,omitempty"`
	Attempt        int       `json:"attempt"`
	Stderr         string    `json:"stderr,omitempty"`
	StderrEncoding string    `json:"stderr_encoding,omitempty"`
	ID             string    `json:"id"`
}

func newLogLine(le client.LogEntry) logLine {
	l := logLine{Time: le.Time, TaskID: le.TaskID, FunctionID: le.FunctionID, Status: le.Status, Kind: le.Kind,
		Message: le.Message, DurationMs: le.DurationMs, Worker: le.Worker, Attempt: le.Attempt, ID: le.ID}
	if len(le.Stderr) > 0 {
		if utf8.Valid(le.Stderr) {
			l.Stderr, l.StderrEncoding = string(le.Stderr), "utf-8"
		} else {
			l.Stderr, l.StderrEncoding = base64.StdEncoding.EncodeToString(le.Stderr), "base64"
		}
	}
	return l
}
