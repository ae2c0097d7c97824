package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

func (e *env) cancelCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cancel TASK_ID...",
		Short: "Cancel tasks: QUEUED or RUNNING ones end FAILED with kind cancelled",
		Long: `Cancel cancels each TASK_ID of your namespace: a QUEUED or RUNNING task becomes FAILED with
kind cancelled at once (a running one is stopped where it runs, and its slot freed). It
prints "TASK_ID cancelled (was STATUS)" on stdout for each. A task that had ended already is
left as it is, and a task that does not exist (or is another namespace's) is not found:
each is said on stderr, and the exit code is then 3. Ids go to the server 1,000 per
request.`,
		Example: `  faas cancel 3f0c9a52-8d3e-4c8e-9b61-0b5d2e4f7a10
  faas cancel "$id1" "$id2" --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("missing TASK_ID (one or more)")
			}
			return nil
		},
	}
	conn := e.serverFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON line per task: the server's answer for it")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := conn.client()
		if err != nil {
			return err
		}
		got, err := c.CancelMany(cmd.Context(), args)
		refused := 0
		for _, r := range got {
			if asJSON {
				line := map[string]any{"task_id": r.TaskID, "status": r.Status}
				if r.Was != "" {
					line["was"] = r.Was
				}
				if r.Err != nil {
					line["error"] = map[string]string{"code": r.Err.Code, "message": r.Err.Message}
				}
				b, jerr := json.Marshal(line)
				if jerr != nil {
					return jerr
				}
				fmt.Fprintf(e.stdout, "%s\n", b)
			}
			switch {
			case r.Err != nil:
				refused++
				fmt.Fprintf(e.stderr, "faas: %s not cancelled: %s: %s\n", r.TaskID, r.Err.Code, r.Err.Message)
			case !asJSON:
				fmt.Fprintf(e.stdout, "%s cancelled (was %s)\n", r.TaskID, r.Was)
			}
		}
		if err != nil {
			return err // the ids before it were answered above
		}
		if refused > 0 {
			return silent(ExitServer)
		}
		return nil
	})
	return cmd
}
