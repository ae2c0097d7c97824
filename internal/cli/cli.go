// Package cli is the faas command line: every command of the one binary, built with cobra,
// run in-process by Run so that tests drive it exactly as a user does.
//
// Exit codes (the command-line contract of docs/CLI.md):
//
//	0  success
//	1  the task FAILED (its "kind: message" on stderr); for batch, any task FAILED;
//	   for long-running commands, a failure while running
//	2  usage error: bad flag, argument or input
//	3  the server cannot be reached or refused the request
//	4  the task has not finished yet (exec --wait --timeout, result --wait): not a failure,
//	   ask again later
//	130 interrupted (SIGINT/SIGTERM) while a client command waited
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"faas/client"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitServer      = 3
	ExitNotFinished = 4
	ExitInterrupted = 130
)

// exitError carries an exit code; msg (if any) is printed on stderr as one line.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// silent is an exit code whose message was already printed.
func silent(code int) error { return &exitError{code: code} }

// exitCode turns an error returned by a command into the process exit code and the message
// for stderr.
func exitCode(err error) (int, string) {
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err == nil {
			return ee.code, ""
		}
		return ee.code, ee.err.Error()
	}
	var ae *client.APIError
	switch {
	case errors.As(err, &ae):
		return ExitServer, describeAPIError(ae)
	case errors.Is(err, client.ErrUnreachable):
		return ExitServer, strings.TrimPrefix(err.Error(), "faas ")
	case errors.Is(err, context.Canceled):
		return ExitInterrupted, "interrupted"
	}
	return ExitFailed, err.Error()
}

func describeAPIError(ae *client.APIError) string {
	return fmt.Sprintf("the server refused the request: %s", strings.TrimPrefix(ae.Error(), "faas server: "))
}

// env holds what every command shares: the streams, and the program name for messages.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// Run runs the faas command line with args (without the program name) and returns the
// process exit code. It never calls os.Exit; ctx ending is SIGINT/SIGTERM.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := e.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	code, msg := exitCode(err)
	if !errors.As(err, &ee) && !ranCommand(cmd) {
		// Errors cobra raises before a command runs (unknown command or flag, wrong number
		// of arguments) are usage errors.
		code = ExitUsage
	}
	if msg != "" {
		line := "faas: " + oneLine(msg)
		if code == ExitUsage && cmd != nil {
			line = cmd.CommandPath() + ": " + oneLine(msg) + " (see '" + cmd.CommandPath() + " --help')"
		}
		fmt.Fprintln(stderr, line)
	}
	return code
}

// ranCommand reports whether cmd's RunE was entered (set by runE).
func ranCommand(cmd *cobra.Command) bool {
	return cmd != nil && cmd.Annotations != nil && cmd.Annotations["ran"] == "yes"
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// runE adapts a command's body to cobra's RunE, marking the command as having run, so that
// its errors get their exit code by type rather than being taken for cobra's usage errors.
func runE(run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if cmd.Annotations == nil {
			cmd.Annotations = map[string]string{}
		}
		cmd.Annotations["ran"] = "yes"
		return run(cmd, args)
	}
}

// args validators whose errors are usage errors naming the problem.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usagef("missing %s", strings.Join(names[len(args):], " and "))
		}
		if len(args) > len(names) && len(names) == 0 {
			return usagef("unexpected argument %q (takes no arguments)", args[0])
		}
		if len(args) > len(names) {
			return usagef("unexpected argument %q (takes %s)", args[len(names)], strings.Join(names, " "))
		}
		return nil
	}
}

func (e *env) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "faas",
		Short: "A Function-as-a-Service platform whose functions are WASI Wasm modules",
		Long: `faas runs WebAssembly (WASI preview1) modules as functions: register a module, run it
with an input, read the task's status and result. Tasks flow through Redis to a dispatcher
that runs each one in a wazero sandbox, in-process or on remote workers.

Exit codes of client commands: 0 success, 1 the task FAILED, 2 usage error,
3 the server cannot be reached or refused the request, 4 the task has not finished yet.`,
		Example: `  # everything in one process (embedded Redis, keeps nothing on disk)
  faas dev &
  id=$(faas register double samples/double/double_wat.wasm)
  faas exec double --input 21 --wait          # prints 42
  printf '1\n2\n3\n' | faas batch double      # one JSON line per input`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: e.checkServerEnv,
		Version:           version(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: err}
	})
	root.AddGroup(&cobra.Group{ID: "client", Title: "Client commands (talk to a server):"},
		&cobra.Group{ID: "run", Title: "Long-running commands:"})
	for _, c := range []*cobra.Command{e.registerCmd(), e.execCmd(), e.statusCmd(), e.resultCmd(), e.batchCmd(), e.functionsCmd(), e.deleteCmd(), e.cancelCmd(), e.apikeyCmd(), e.logsCmd(), e.workersCmd()} {
		c.GroupID = "client"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{e.serverCmd(), e.dispatcherCmd(), e.workerCmd(), e.devCmd()} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	root.AddGroup(&cobra.Group{ID: "author", Title: "Writing functions (no server needed):"})
	for _, c := range []*cobra.Command{e.newCmd(), e.buildCmd(), e.runCmd()} {
		c.GroupID = "author"
		root.AddCommand(c)
	}
	root.AddCommand(e.keygenCmd(), e.versionCmd(), e.compileCmd())
	return root
}
