package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"faas/internal/scaffold"
)

func (e *env) newCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "new go|c|wat|assemblyscript NAME [--dir D]",
		Short: "Write a new function project: a working double in the language of your choice",
		Long: `New writes a function project called NAME into the directory NAME (or --dir D), which
must not exist or be empty: the source of a function that doubles an integer, its build file,
a README and input.txt, a test input. Go, C and AssemblyScript projects use the reactor ABI
(the module is initialized once and every task starts from that state: docs/API.md); the
WAT project is a command. Then 'faas build' in the directory builds NAME.wasm.

NAME is 1 to 64 of a-z 0-9 - _, starting with a letter: it names the module, the .wasm
and, by convention, the function you register.`,
		Example: `  faas new go double && cd double
  faas build && faas run double.wasm --input 21        # prints 42
  faas new c double-c --dir /tmp/double-c`,
		Args: exactArgs("LANGUAGE", "NAME"),
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write (default: ./NAME)")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		lang, name := strings.ToLower(args[0]), args[1]
		if err := scaffold.CheckLang(lang); err != nil {
			return usagef("%v", err)
		}
		if err := scaffold.CheckName(name); err != nil {
			return usagef("%v", err)
		}
		if dir == "" {
			dir = name
		}
		files, err := scaffold.New(dir, lang, name)
		if errors.Is(err, scaffold.ErrExists) {
			return usagef("%v", err)
		}
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintln(e.stdout, filepath.Join(dir, filepath.FromSlash(f)))
		}
		next := "cd " + dir + " && faas build"
		if lang == scaffold.AssemblyScript {
			next = "cd " + dir + " && npm install && faas build"
		}
		fmt.Fprintf(e.stderr, "wrote a %s function; next: %s && faas run %s.wasm --input-file input.txt\n", lang, next, name)
		return nil
	})
	return cmd
}
