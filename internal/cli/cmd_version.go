package cli

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version describes this binary from its build information: the module version (or
// "(devel)"), the VCS commit and whether the tree was modified, the Go version, and the
// wazero version that runs every function.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "faas (no build information)"
	}
	return describeBuild(bi)
}

// describeBuild is version's text for bi. (A test binary's build information lists no
// dependencies; a built faas lists wazero.)
func describeBuild(bi *debug.BuildInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "faas %s", bi.Main.Version)
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		fmt.Fprintf(&b, ", commit %.12s", rev)
		if settings["vcs.modified"] == "true" {
			b.WriteString(" (modified)")
		}
		if t := settings["vcs.time"]; t != "" {
			fmt.Fprintf(&b, " of %s", t)
		}
	}
	fmt.Fprintf(&b, ", %s", bi.GoVersion)
	for _, d := range bi.Deps {
		if d.Path == "github.com/tetratelabs/wazero" {
			fmt.Fprintf(&b, ", wazero %s", d.Version)
		}
	}
	return b.String()
}

func (e *env) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of faas, its commit, and the Go and wazero versions it was built with",
		Args:  exactArgs(),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(e.stdout, version())
			return err
		}),
	}
}
