// Package layers holds the test that keeps the house standing: which package of faas may
// depend on which (docs/ARCHITECTURE.md draws the same table). It asks the go command for
// each package's transitive dependencies, so an import that slips in anywhere below a
// package is caught, not only a direct one.
package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const (
	wazero = "github.com/tetratelabs/wazero"
	zmq    = "github.com/pebbe/zmq4"
	redis  = "github.com/redis/go-redis/v9"
)

// rules: for each package, the dependencies it must not have (a path, or a path prefix
// ending in "/"). "faas/" alone means: nothing of faas at all.
var rules = []struct {
	pkg    string
	forbid []string
	why    string
}{
	{"faas/task", []string{"faas/"}, "task is the shared vocabulary: a leaf"},
	{"faas/task", []string{wazero, zmq, redis}, "task is the shared vocabulary: a leaf"},
	{"faas/protocol", []string{wazero, zmq, redis, "faas/sandbox", "faas/store"}, "the codec is plain Go without cgo"},
	{"faas/store", []string{wazero, zmq, "faas/sandbox", "faas/protocol", "faas/dispatch"}, "the data model speaks only Redis"},
	{"faas/client", []string{wazero, zmq, redis, "faas/store", "faas/sandbox"}, "users import the client alone"},
	{"faas/sandbox", []string{zmq, redis, "faas/store", "faas/protocol"}, "the sandbox knows only wazero"},
	{"faas/executor", []string{zmq, redis, "faas/store", "faas/protocol"}, "one task in the sandbox, wherever it came from"},
	{"faas/server", []string{zmq, "faas/dispatch", "faas/worker", "faas/protocol"}, "the REST server never talks to workers"},
	{"faas/dispatch", []string{"faas/worker", "faas/server"}, "local mode runs without the remote worker"},
	{"faas/internal/scaffold", []string{wazero, zmq, redis, "faas/sandbox", "faas/store"}, "scaffolding writes and builds projects; it runs no Wasm"},
	{"faas/worker", []string{redis, "faas/store", "faas/dispatch", "faas/server"}, "a remote worker reaches Redis only through its dispatcher"},
	{"faas/internal/ui", []string{"faas/", wazero, zmq, redis}, "the dashboard's files hold no data: the page reaches everything through the API"},
}

func TestLayers(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	deps := map[string][]string{}
	for _, r := range rules {
		if _, ok := deps[r.pkg]; ok {
			continue
		}
		out, err := exec.Command("go", "list", "-deps", r.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", r.pkg, err, out)
		}
		deps[r.pkg] = strings.Fields(string(out))
		if len(deps[r.pkg]) == 0 {
			t.Fatalf("go list -deps %s listed nothing", r.pkg)
		}
	}
	for _, r := range rules {
		for _, d := range deps[r.pkg] {
			if d == r.pkg {
				continue
			}
			for _, f := range r.forbid {
				if d == f || strings.HasSuffix(f, "/") && strings.HasPrefix(d, f) || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s: %s", r.pkg, d, r.why)
				}
			}
		}
	}
}
