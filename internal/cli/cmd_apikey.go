package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"faas/server"
	"faas/store"
)

// apikeyCmd prints a new line for the key file of 'faas server --api-keys'.
func (e *env) apikeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "apikey NAMESPACE",
		Short: "Print a new API key line for 'faas server --api-keys FILE'",
		Long: `Apikey prints "NAMESPACE KEY" with a new random key (32 bytes from the system's random
source), to append to the key file of 'faas server --api-keys'; send SIGHUP to the server to
load it. Quota options (rate=, burst=, tasks=, module_bytes=, timeout_ms=, memory_mb=) may
be added at the end of the line. Give the key to the namespace's users as FAAS_API_KEY.`,
		Example: `  faas apikey team-a >> /etc/faas/keys && pkill -HUP -x faas
  export FAAS_API_KEY=$(faas apikey team-a | tee -a keys | cut -d' ' -f2)`,
		Args: exactArgs("NAMESPACE"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if err := store.CheckNamespace(args[0]); err != nil {
				return usagef("%v", err)
			}
			key, err := server.NewKey()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "%s %s\n", args[0], key)
			return err
		}),
	}
}
