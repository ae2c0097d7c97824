// Command faas is the one binary of the faas platform: the REST server, the dispatcher, the
// workers, the all-in-one dev mode, and the client commands. See 'faas --help'.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"faas/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, args, stdin, stdout, stderr)
}
