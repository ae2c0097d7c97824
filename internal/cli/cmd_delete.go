package cli

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"faas/client"
)

func (e *env) deleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete FUNCTION",
		Short: "Delete a function (by id, or the newest with a name)",
		Long: `Delete deletes FUNCTION (a function_id, or a name: the newest function with that name) of
your namespace. New submissions of it are refused (not found); its tasks still queued end
FAILED (kind internal, "deleted before the task ran"); running ones finish. Its module is
removed from Redis when no function uses it any more. Prints the deleted function's id.`,
		Example: `  faas delete double
  faas delete 0b8f6f4e-3c55-4d5e-9a57-2f0d1e0f7d41`,
		Args: exactArgs("FUNCTION"),
	}
	conn := e.serverFlags(cmd.Flags())
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := conn.client()
		if err != nil {
			return err
		}
		d, err := c.Delete(cmd.Context(), args[0])
		var ae *client.APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
			return &exitError{code: ExitServer, err: fmt.Errorf("no function with id or name %q (see 'faas functions')", args[0])}
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(e.stdout, d.ID)
		return err
	})
	return cmd
}
