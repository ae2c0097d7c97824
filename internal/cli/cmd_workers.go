package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func (e *env) workersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "List the dispatchers alive and their workers",
		Long: `Workers lists the dispatchers heard from within their heartbeat timeout (a few seconds):
id, mode, address, slots, tasks running, when started and last heard, and each remote
worker's slots, running tasks and tasks done. With no dispatcher alive it says so on stderr:
tasks are then accepted but wait in the queue. A server with --api-keys answers only a key
flagged admin=true (it shows the whole deployment).`,
		Example: `  faas workers
  faas workers --json`,
		Args: exactArgs(),
	}
	conn := e.serverFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := conn.client()
		if err != nil {
			return err
		}
		ws, err := c.Workers(cmd.Context())
		if err != nil {
			return err
		}
		if asJSON {
			return e.printRaw(ws.Raw)
		}
		if !ws.Healthy {
			fmt.Fprintln(e.stderr, "faas: "+ws.Reason)
		}
		if len(ws.Dispatchers) == 0 {
			return nil
		}
		now := time.Now()
		tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "DISPATCHER\tMODE\tADDRESS\tSLOTS\tRUNNING\tDONE\tSTARTED\tHEARD\tVERSION")
		for _, d := range ws.Dispatchers {
			addr := d.Address
			if addr == "" {
				addr = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", printable([]byte(d.ID)), d.Mode, printable([]byte(addr)),
				d.Slots, d.Running, d.Done, ago(now, d.StartedAt), ago(now, d.HeardAt), printable([]byte(d.Version)))
			for _, w := range d.Workers {
				fmt.Fprintf(tw, "  %s\t\t\t%d\t%d\t%d\t\t%s\t\n", printable([]byte(w.ID)), w.Slots, w.Running, w.Done, ago(now, w.HeardAt))
			}
			if d.WorkersOmitted > 0 {
				fmt.Fprintf(tw, "  (%d more workers)\t\t\t\t\t\t\t\t\n", d.WorkersOmitted)
			}
		}
		return tw.Flush()
	})
	return cmd
}

// ago says how long before now t was, rounded for a person.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return d.Round(100*time.Millisecond).String() + " ago"
	case d < time.Hour:
		return d.Round(time.Second).String() + " ago"
	default:
		return d.Round(time.Minute).String() + " ago"
	}
}
