package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"faas/internal/scaffold"
)

func (e *env) buildCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "build [DIR]",
		Short: "Build the function project in DIR (default: here) into NAME.wasm",
		Long: `Build finds the project in DIR (default: the current directory) and runs its toolchain:
a go.mod is built with Go 1.24 or newer (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared),
*.c files with clang for wasm32-wasi (-mexec-model=reactor), one .wat file with wat2wasm, a
package.json using assemblyscript with node_modules/.bin/asc. Each command is printed on
stderr before it runs, with the toolchain's own output; the path of the module built is
printed on stdout.

Build installs nothing: when a tool is missing it says what to install and exits 2.
Exit codes: 0 built, 1 the toolchain failed (its messages above), 2 no project found or a
tool missing.`,
		Example: `  faas build                      # the project in the current directory
  wasm=$(faas build ./double) && faas run "$wasm" --input 21`,
		Args: cobra.MaximumNArgs(1),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		dir := "."
		if len(args) == 1 {
			dir = args[0]
		}
		p, err := scaffold.Detect(dir)
		if err != nil {
			return usagef("%v", err)
		}
		err = p.Build(cmd.Context(), e.stderr)
		var te *scaffold.ToolError
		var be *scaffold.BuildError
		switch {
		case errors.As(err, &te):
			return usagef("%v", err)
		case errors.As(err, &be):
			return &exitError{code: ExitFailed, err: fmt.Errorf("building %s failed: %w", p.Dir, err)}
		case err != nil:
			return err
		}
		_, err = fmt.Fprintln(e.stdout, p.Output())
		return err
	})
	return cmd
}
