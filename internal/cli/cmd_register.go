package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"faas/client"
)

func (e *env) registerCmd() *cobra.Command {
	var (
		lim    client.Limits
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "register NAME FILE.wasm",
		Short: "Register a Wasm module as a function; prints its function_id",
		Long: `Register uploads FILE.wasm (a WASI preview1 command module; "-" reads it from stdin)
as a new function called NAME and prints the new function_id, nothing else, on stdout.
Registering a name again makes a new function: the name then refers to the newest.
Limit flags left out take the server's defaults.`,
		Example: `  faas register double samples/double/double_wat.wasm
  faas register slow samples/sleep/sleep.wasm --timeout-ms 60000 --memory-mb 16
  id=$(faas register double double.wasm) && faas exec "$id" --input 21 --wait`,
		Args: exactArgs("NAME", "FILE.wasm"),
	}
	conn := e.serverFlags(cmd.Flags())
	fs := cmd.Flags()
	fs.Int64Var(&lim.TimeoutMs, "timeout-ms", 0, "wall-clock limit of one run, in ms (server default 10000)")
	fs.Int64Var(&lim.MemoryMB, "memory-mb", 0, "linear memory limit, in MiB (server default 64)")
	fs.Int64Var(&lim.StdoutBytes, "stdout-bytes", 0, "largest result kept, in bytes (server default 4 MiB)")
	fs.Int64Var(&lim.StdinBytes, "stdin-bytes", 0, "largest input accepted, in bytes (server default 4 MiB)")
	fs.Int64Var(&lim.CPUUnits, "cpu-units", 0, "CPU budget of one run: function entries and loop iterations (default 0: none, only the timeout)")
	fs.BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		name, file := args[0], args[1]
		for _, f := range []struct {
			flag string
			v    int64
		}{{"timeout-ms", lim.TimeoutMs}, {"memory-mb", lim.MemoryMB}, {"stdout-bytes", lim.StdoutBytes}, {"stdin-bytes", lim.StdinBytes}, {"cpu-units", lim.CPUUnits}} {
			if f.v < 0 {
				return usagef("--%s must not be negative, got %d", f.flag, f.v)
			}
		}
		wasm, err := e.readInput(file)
		if err != nil {
			return usagef("reading the module: %v", err)
		}
		var limits *client.Limits
		if lim != (client.Limits{}) {
			limits = &lim
		}
		c, err := conn.client()
		if err != nil {
			return err
		}
		id, err := c.Register(cmd.Context(), name, wasm, limits)
		if err != nil {
			return err
		}
		if asJSON {
			return e.printJSON(map[string]string{"function_id": id})
		}
		_, err = fmt.Fprintln(e.stdout, id)
		return err
	})
	return cmd
}
