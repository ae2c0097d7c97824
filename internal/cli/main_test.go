package cli

import (
	"context"
	"os"
	"testing"

	"faas/sandbox"
)

// TestMain lets this test binary play the compiling child: the daemons these tests run
// in-process use the running executable as sandbox.Isolation's binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.ChildCommand {
		os.Exit(Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
