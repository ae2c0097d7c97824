package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

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
	conn := e.serverFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := conn.client()
		if err != nil {
			return err
		}
		fns, err := c.Functions(cmd.Context())
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
