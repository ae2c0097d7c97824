package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"faas/sandbox"
)

// compileCmd is the hidden child a daemon runs to compile one module under limits
// (sandbox.Isolation). It is not for people: its interface is the sandbox's.
func (e *env) compileCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    sandbox.ChildCommand,
		Short:  "compile one module from stdin into a compilation cache, under limits (internal)",
		Hidden: true,
		Args:   exactArgs(),
	}
	var cacheDir, memory string
	var timeout time.Duration
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "compilation cache directory to write")
	cmd.Flags().StringVar(&memory, "compile-memory", "", "address-space limit")
	cmd.Flags().DurationVar(&timeout, "compile-timeout", 0, "CPU-time limit")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		mem, err := parseBytes(memory)
		if err != nil {
			return usagef("--compile-memory: %v", err)
		}
		// Limits first: nothing of the module is read before they hold.
		if err := sandbox.SetChildLimits(sandbox.ChildLimits{Memory: mem, Timeout: timeout}); err != nil {
			return usagef("%v", err)
		}
		err = sandbox.RunChild(cmd.Context(), e.stdin, cacheDir)
		if errors.Is(err, sandbox.ErrInvalidModule) {
			fmt.Fprintln(e.stderr, oneLine(err.Error()))
			return silent(sandbox.ChildExitRefused)
		}
		return err
	})
	return cmd
}

// compileOpts are the compilation flags of the daemons that compile modules.
type compileOpts struct {
	memory, cacheMax string
	timeout          time.Duration
}

func addCompileFlags(fs *pflag.FlagSet) *compileOpts {
	o := &compileOpts{}
	fs.StringVar(&o.memory, "compile-memory", "2GiB", "address-space limit of the child process that compiles each new module (bytes, or with KiB, MiB, GiB)")
	fs.DurationVar(&o.timeout, "compile-timeout", sandbox.DefaultCompileTimeout, "wall-clock and CPU-time limit of compiling one module")
	fs.StringVar(&o.cacheMax, "cache-max-bytes", "1GiB", "bound of the on-disk compilation cache; least recently used modules are evicted past it")
	return o
}

// config turns the flags into the sandbox's configuration, or a usage error.
func (o *compileOpts) config(cacheDir string) (sandbox.Config, error) {
	mem, err := parseBytes(o.memory)
	if err != nil || mem < 64<<20 {
		return sandbox.Config{}, usagef("--compile-memory %q: want a size of at least 64MiB, like 2GiB", o.memory)
	}
	if o.timeout < time.Second {
		return sandbox.Config{}, usagef("--compile-timeout %v: want at least 1s", o.timeout)
	}
	max, err := parseBytes(o.cacheMax)
	if err != nil || max < 1<<20 {
		return sandbox.Config{}, usagef("--cache-max-bytes %q: want a size of at least 1MiB, like 1GiB", o.cacheMax)
	}
	return sandbox.Config{
		CacheDir:      cacheDir,
		CacheMaxBytes: max,
		Isolate:       &sandbox.Isolation{Memory: mem, Timeout: o.timeout},
	}, nil
}

// parseBytes reads a size: a number of bytes, or one with a KiB, MiB or GiB suffix.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	return n * mult, nil
}

// childBinary is the executable run as the compiling child: this one. Tests of this package
// run in a test binary, whose TestMain plays the child.
var childBinary = os.Executable
