package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"faas/sandbox"
	"faas/server"
	"faas/task"
)

// runOutcome is `faas run --json`'s answer: a task's record as the REST API has it, with
// the timings of this one run.
type runOutcome struct {
	Status         string        `json:"status"`
	Result         string        `json:"result"`
	ResultEncoding string        `json:"result_encoding"`
	Error          *task.Failure `json:"error,omitempty"`
	Stderr         string        `json:"stderr,omitempty"`
	StderrEncoding string        `json:"stderr_encoding,omitempty"`
	CPUUnits       uint64        `json:"cpu_units"`
	DurationMs     float64       `json:"duration_ms"` // instantiation and run: what a task costs (the median of the runs)
	MinMs          float64       `json:"min_ms"`      // the fastest of the runs
	Runs           int           `json:"runs"`
	CompileMs      float64       `json:"compile_ms"` // validation and compilation (or the cache's load)
}

func (e *env) runCmd() *cobra.Command {
	var (
		input, inputFile, memory, cacheDir string
		timeout                            time.Duration
		cpuUnits                           int64
		repeat                             int
		asJSON                             bool
	)
	cmd := &cobra.Command{
		Use:   "run FILE.wasm [--input X | --input-file F] [--timeout D] [--memory SIZE] [--cpu-units N] [--json]",
		Short: "Run a module once, here, in the sandbox: no server, no Redis",
		Long: `Run validates FILE.wasm as registration does (same checks, same messages), then runs it
once in the sandbox, as a task would run, on an input: --input X, or --input-file F ("-"
for stdin), else an empty input. The limits are a function's defaults unless set.

The result (the function's stdout) goes to stdout, exactly as written; the function's
stderr goes to stderr (control characters escaped), followed by one line with the outcome,
the time the run took and its cpu_units. --json prints all of it as one JSON object on
stdout instead. Exit codes, as 'faas exec --wait': 0 COMPLETED, 1 FAILED, 2 usage error
or a module that registration would refuse.`,
		Example: `  faas run double.wasm --input 21                     # prints 42
  faas run double.wasm --input-file input.txt --json
  faas run slow.wasm --timeout 2s --memory 16MiB --cpu-units 1000000`,
		Args: exactArgs("FILE.wasm"),
	}
	fs := cmd.Flags()
	fs.StringVar(&input, "input", "", "the input, as a string")
	fs.StringVar(&inputFile, "input-file", "", `read the input from this file ("-" for stdin)`)
	fs.DurationVar(&timeout, "timeout", time.Duration(task.DefaultLimits().TimeoutMs)*time.Millisecond, "wall-clock limit of the run (timeout_ms), a whole number of ms")
	fs.StringVar(&memory, "memory", fmt.Sprintf("%dMiB", task.DefaultLimits().MemoryMB), "linear memory limit (memory_mb): a whole number of MiB, like 16MiB or 1GiB")
	fs.Int64Var(&cpuUnits, "cpu-units", 0, "CPU budget: function entries and loop iterations (0: none, only the timeout)")
	fs.BoolVar(&asJSON, "json", false, "print the outcome as one JSON object on stdout")
	fs.IntVar(&repeat, "repeat", 1, "run it this many times, each in a fresh instance, and report the median and fastest time per task (stops at the first failure)")
	fs.StringVar(&cacheDir, "cache-dir", defaultCacheDir(), `wazero compilation cache directory ("" keeps compiled code in a private temporary directory)`)
	compile := addCompileFlags(fs)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		limits, err := runLimits(timeout, memory, cpuUnits)
		if err != nil {
			return err
		}
		if repeat < 1 || repeat > 1_000_000 {
			return usagef("--repeat %d: want 1 to 1000000", repeat)
		}
		if cmd.Flags().Changed("input") && cmd.Flags().Changed("input-file") {
			return usagef("give --input or --input-file, not both")
		}
		in := []byte(input)
		if cmd.Flags().Changed("input-file") {
			if in, err = e.readInput(inputFile); err != nil {
				return usagef("reading the input: %v", err)
			}
		}
		wasm, err := os.ReadFile(args[0])
		if err != nil {
			return usagef("reading the module: %v", err)
		}
		if int64(len(wasm)) > server.DefaultMaxModuleBytes {
			return usagef("%s is %d bytes, above the server's default limit of %d bytes (faas server --max-module-bytes)", args[0], len(wasm), server.DefaultMaxModuleBytes)
		}
		ctx := cmd.Context()
		sb, err := e.runSandbox(ctx, cacheDir, compile)
		if err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = sb.Close(cctx)
		}()
		start := time.Now()
		info, err := sb.Validate(ctx, wasm, limits)
		if errors.Is(err, sandbox.ErrInvalidModule) {
			return usagef("%s: %v", args[0], err)
		}
		if err != nil {
			return err
		}
		compiled := time.Since(start)
		name := strings.TrimSuffix(filepath.Base(args[0]), ".wasm")
		var res sandbox.Result
		times := make([]time.Duration, 0, repeat)
		for range repeat {
			if res, err = sb.Run(ctx, info.Hash, name, in, limits); err != nil {
				return err
			}
			times = append(times, res.Duration)
			if res.Failure != nil {
				break
			}
		}
		return e.printRun(res, times, compiled, asJSON)
	})
	return cmd
}

// runLimits turns the limit flags into a task's limits, checked as registration checks
// them against the server's default maximums.
func runLimits(timeout time.Duration, memory string, cpuUnits int64) (task.Limits, error) {
	if timeout <= 0 || timeout%time.Millisecond != 0 {
		return task.Limits{}, usagef("--timeout %v: want a positive whole number of milliseconds, like 500ms or 10s", timeout)
	}
	mem, err := parseBytes(memory)
	if err != nil || mem%(1<<20) != 0 {
		return task.Limits{}, usagef("--memory %q: want a whole number of MiB, like 16MiB or 1GiB", memory)
	}
	if cpuUnits < 0 {
		return task.Limits{}, usagef("--cpu-units must not be negative, got %d", cpuUnits)
	}
	l := task.Limits{TimeoutMs: timeout.Milliseconds(), MemoryMB: mem >> 20, CPUUnits: cpuUnits}.WithDefaults()
	if err := l.Check(task.MaxLimits()); err != nil {
		return task.Limits{}, usagef("%v", err)
	}
	return l, nil
}

// runSandbox starts a sandbox as the daemons do: compiling in a bounded child process, with
// the on-disk cache, so that a hostile module costs this command no more than it would
// cost a server, and a second run of the same module skips compiling.
func (e *env) runSandbox(ctx context.Context, dir string, compile *compileOpts) (*sandbox.Sandbox, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, usagef("--cache-dir: %v", err)
		}
		if err := checkCacheDir(dir); err != nil {
			return nil, err
		}
	}
	cfg, err := compile.config(dir)
	if err != nil {
		return nil, err
	}
	cfg.Isolate.Log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if cfg.Isolate.Binary, err = childBinary(); err != nil {
		return nil, fmt.Errorf("finding the faas binary for compilation: %w", err)
	}
	sb, err := sandbox.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("starting the sandbox: %w", err)
	}
	return sb, nil
}

// printRun prints the last run's outputs and outcome, with the time per task over the runs.
func (e *env) printRun(res sandbox.Result, times []time.Duration, compiled time.Duration, asJSON bool) error {
	status := "COMPLETED"
	if res.Failure != nil {
		status = "FAILED"
	}
	slices.Sort(times)
	median, fastest := times[len(times)/2], times[0]
	if asJSON {
		o := runOutcome{Status: status, Error: res.Failure, CPUUnits: res.CPUUnits,
			DurationMs: ms(median), MinMs: ms(fastest), Runs: len(times), CompileMs: ms(compiled)}
		o.Result, o.ResultEncoding = encodeOutput(res.Stdout)
		if len(res.Stderr) > 0 {
			o.Stderr, o.StderrEncoding = encodeOutput(res.Stderr)
		}
		if err := e.printJSON(o); err != nil {
			return err
		}
	} else {
		if _, err := e.stdout.Write(res.Stdout); err != nil {
			return err
		}
		if n := len(res.Stdout); n > 0 && res.Stdout[n-1] != '\n' && isTerminal(e.stdout) && isTerminal(e.stderr) {
			// One terminal shows both: the report starts on a line of its own, not after
			// the result ("42COMPLETED"). Redirected, stdout stays byte for byte.
			fmt.Fprintln(e.stderr)
		}
		if len(res.Stderr) > 0 {
			fmt.Fprintln(e.stderr, printable(res.Stderr))
		}
		outcome := status
		if res.Failure != nil {
			outcome += " " + res.Failure.Error()
		}
		took := fmt.Sprintf("in %.3f ms", ms(median))
		if len(times) > 1 {
			took = fmt.Sprintf("after %d runs: median %.3f ms, fastest %.3f ms per task", len(times), ms(median), ms(fastest))
		}
		fmt.Fprintf(e.stderr, "%s %s, cpu_units %d (validated and compiled in %.0f ms)\n",
			outcome, took, res.CPUUnits, ms(compiled))
	}
	if res.Failure != nil {
		return silent(ExitFailed)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// encodeOutput is a task output for JSON, as the REST API and faas batch give it: the text
// when it is UTF-8, else base64.
func encodeOutput(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), "utf-8"
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}
