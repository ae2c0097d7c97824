package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"faas/internal/zsock"
)

func (e *env) keygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen PATH",
		Short: "Write a CURVE key pair for a dispatcher or a worker: PATH.key and PATH.pub",
		Long: `Keygen writes a new CURVE key pair: PATH.key holds the secret key (mode 0600; give it to
exactly one dispatcher or worker with --key) and PATH.pub the public key (Z85, 40
characters), which is safe to share: a dispatcher's goes to its workers' --dispatcher-key,
a worker's into the dispatcher's --authorized-workers file. Existing files are never
overwritten. It prints the public key.`,
		Example: `  faas keygen /etc/faas/dispatcher
  faas keygen /etc/faas/worker-1 && cat /etc/faas/worker-1.pub >> /etc/faas/authorized_workers`,
		Args: exactArgs("PATH"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			k, err := zsock.NewKeyPair()
			if err != nil {
				return err
			}
			if err := zsock.WriteKeyPair(args[0], k); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, k.Public)
			return nil
		}),
	}
}
