package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"faas/task"
)

// TestLuaSpellsNoKind keeps failure kinds out of the Lua text: they come from package task,
// passed in ARGV, so renaming a kind cannot leave a script writing the old name.
func TestLuaSpellsNoKind(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	scripts := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING || !strings.HasPrefix(lit.Value, "`") {
				return true
			}
			if strings.Contains(lit.Value, "redis.call") {
				scripts++
			}
			for _, k := range task.Kinds {
				for _, q := range []string{"'" + string(k) + "'", `"` + string(k) + `"`} {
					if strings.Contains(lit.Value, q) {
						t.Errorf("%s: Lua text spells the failure kind %s", fset.Position(lit.Pos()), q)
					}
				}
			}
			return true
		})
	}
	if scripts < 10 {
		t.Fatalf("found %d Lua texts; the scan missed the scripts", scripts)
	}
}
