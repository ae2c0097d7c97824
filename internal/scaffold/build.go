package scaffold

// This file: `faas build`, finding what kind of project a directory holds, checking that its
// toolchain is installed (saying exactly what to install, never installing it), and running
// it.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNotProject is matched (errors.Is) by Detect's answer for a directory holding no
// project it knows.
var ErrNotProject = errors.New("no function project found")

// Project is a function project found in a directory.
type Project struct {
	Dir  string // the project's directory
	Lang string // Go, C, WAT or AssemblyScript
	Name string // the module is built to Dir/Name.wasm
	src  []string
}

// Output is the path of the module the build writes.
func (p Project) Output() string { return filepath.Join(p.Dir, p.Name+".wasm") }

// Detect finds the project in dir: go.mod (Go), a package.json depending on assemblyscript,
// *.c files (C, built together), or one *.wat file, in that order.
func Detect(dir string) (Project, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return Project{}, fmt.Errorf("%w: %w", ErrNotProject, err)
	}
	if !fi.IsDir() {
		return Project{}, fmt.Errorf("%w: %s is not a directory", ErrNotProject, dir)
	}
	p := Project{Dir: dir}
	if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
		p.Lang, p.Name = Go, goModuleName(mod)
		if p.Name == "" {
			return Project{}, fmt.Errorf("%w: %s has no module line", ErrNotProject, filepath.Join(dir, "go.mod"))
		}
		return p, nil
	}
	if pkg, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil {
		return detectAS(p, pkg)
	}
	cs, _ := filepath.Glob(filepath.Join(dir, "*.c"))
	wats, _ := filepath.Glob(filepath.Join(dir, "*.wat"))
	switch {
	case len(cs) > 0:
		p.Lang, p.src = C, base(cs)
		p.Name = strings.TrimSuffix(p.src[0], ".c")
		if len(cs) > 1 {
			p.Name = dirName(dir)
		}
	case len(wats) == 1:
		p.Lang, p.src = WAT, base(wats)
		p.Name = strings.TrimSuffix(p.src[0], ".wat")
	case len(wats) > 1:
		return Project{}, fmt.Errorf("%w: %s has %d .wat files (%s); a WAT project has one", ErrNotProject, dir, len(wats), strings.Join(base(wats), ", "))
	default:
		return Project{}, fmt.Errorf("%w in %s: want a go.mod, a package.json using assemblyscript, *.c files or one .wat file ('faas new' writes one)", ErrNotProject, dir)
	}
	return p, nil
}

func detectAS(p Project, pkg []byte) (Project, error) {
	var meta struct {
		Name            string            `json:"name"`
		Dependencies    map[string]string `json:"dependencies"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if err := json.Unmarshal(pkg, &meta); err != nil {
		return Project{}, fmt.Errorf("%w: %s: %w", ErrNotProject, filepath.Join(p.Dir, "package.json"), err)
	}
	if meta.Dependencies["assemblyscript"] == "" && meta.DevDependencies["assemblyscript"] == "" {
		return Project{}, fmt.Errorf("%w: %s does not depend on assemblyscript", ErrNotProject, filepath.Join(p.Dir, "package.json"))
	}
	p.Lang = AssemblyScript
	// A scoped npm name (@scope/name) builds name.wasm.
	p.Name = meta.Name[strings.LastIndexByte(meta.Name, '/')+1:]
	if p.Name == "" {
		p.Name = dirName(p.Dir)
	}
	// faas new writes NAME.ts; asinit writes assembly/index.ts.
	for _, src := range []string{p.Name + ".ts", filepath.Join("assembly", "index.ts")} {
		if _, err := os.Stat(filepath.Join(p.Dir, src)); err == nil {
			p.src = []string{src}
			return p, nil
		}
	}
	return Project{}, fmt.Errorf("%w: %s has neither %s.ts nor assembly/index.ts", ErrNotProject, p.Dir, p.Name)
}

// goModuleName is the last element of go.mod's module path ("" when there is none).
func goModuleName(mod []byte) string {
	sc := bufio.NewScanner(strings.NewReader(string(mod)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "module" {
			path := strings.Trim(f[1], `"`)
			return path[strings.LastIndexByte(path, '/')+1:]
		}
	}
	return ""
}

func base(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	sort.Strings(out)
	return out
}

func dirName(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return filepath.Base(dir)
}

// ToolError says which tools a build lacks and how to install them.
type ToolError struct {
	Lang    string
	Missing []string
	Install string
}

func (e *ToolError) Error() string {
	return fmt.Sprintf("%s project needs %s, which %s not installed; %s",
		map[string]string{Go: "a Go", C: "a C", WAT: "a WAT", AssemblyScript: "an AssemblyScript"}[e.Lang], strings.Join(e.Missing, ", "), map[bool]string{true: "is", false: "are"}[len(e.Missing) == 1], e.Install)
}

const aptC = "clang lld wasi-libc libclang-rt-14-dev-wasm32"

// CheckTools returns a *ToolError naming what p's toolchain lacks, or nil.
func (p Project) CheckTools(ctx context.Context) error {
	var missing []string
	var install string
	switch p.Lang {
	case Go:
		install = "install Go 1.24 or newer from https://go.dev/dl/ (it builds WASI reactors)"
		out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
		if err != nil {
			missing = append(missing, "go (1.24 or newer)")
		} else if v := strings.TrimSpace(string(out)); !goAtLeast(v, 1, 24) {
			missing = append(missing, "go 1.24 or newer (found "+v+")")
		}
	case WAT:
		install = "on Debian or Ubuntu: sudo apt-get install wabt"
		if _, err := exec.LookPath("wat2wasm"); err != nil {
			missing = append(missing, "wat2wasm (wabt)")
		}
	case C:
		install = "on Debian or Ubuntu: sudo apt-get install " + aptC
		missing = missingC(ctx)
	case AssemblyScript:
		install = "run npm install in " + p.Dir + " (it needs node and npm: on Debian or Ubuntu, sudo apt-get install npm)"
		if _, err := exec.LookPath("node"); err != nil {
			missing = append(missing, "node")
		}
		if _, err := os.Stat(filepath.Join(p.Dir, "node_modules", ".bin", "asc")); err != nil {
			missing = append(missing, "node_modules/.bin/asc (assemblyscript)")
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &ToolError{Lang: p.Lang, Missing: missing, Install: install}
}

// missingC asks clang itself where the WASI libc and the wasm32 builtins are, so that a
// sysroot set up another way than Debian's (a WASI SDK on PATH) passes too.
func missingC(ctx context.Context) []string {
	if _, err := exec.LookPath("clang"); err != nil {
		return []string{"clang", "wasm-ld (lld)", "wasi-libc", "libclang_rt.builtins-wasm32.a (libclang-rt-14-dev-wasm32)"}
	}
	var missing []string
	if _, err := exec.LookPath("wasm-ld"); err != nil {
		missing = append(missing, "wasm-ld (lld)")
	}
	ask := func(flag string) string {
		out, err := exec.CommandContext(ctx, "clang", "--target=wasm32-wasi", flag).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	// -print-file-name answers the bare name when it finds no such file.
	if lib := ask("-print-file-name=libc.a"); !filepath.IsAbs(lib) {
		missing = append(missing, "wasi-libc")
	}
	if rt := ask("-print-libgcc-file-name"); rt == "" || !exists(rt) {
		missing = append(missing, "libclang_rt.builtins-wasm32.a (libclang-rt-14-dev-wasm32)")
	}
	return missing
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// goAtLeast reports whether a GOVERSION like go1.24.3 or go1.25rc1 is at least major.minor.
func goAtLeast(v string, major, minor int) bool {
	v, ok := strings.CutPrefix(v, "go")
	if !ok {
		return false
	}
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	// The minor version ends where its digits do: "25rc1" is 25.
	mi := parts[1]
	if i := strings.IndexFunc(mi, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		mi = mi[:i]
	}
	ma, err1 := strconv.Atoi(parts[0])
	mn, err2 := strconv.Atoi(mi)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mn >= minor
}

// Step is one command of a build.
type Step struct {
	Env  []string // added to the environment
	Args []string
}

// String is the step as a shell line, for people to read and paste.
func (s Step) String() string {
	parts := append([]string{}, s.Env...)
	for _, a := range s.Args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// Steps are the commands that build p, run in p.Dir.
func (p Project) Steps() []Step {
	out := p.Name + ".wasm"
	switch p.Lang {
	case Go:
		// GOTOOLCHAIN=local: a go.mod asking for a newer Go fails with a message instead of
		// downloading a toolchain behind the user's back.
		return []Step{{Env: []string{"GOOS=wasip1", "GOARCH=wasm", "GOTOOLCHAIN=local"},
			Args: []string{"go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, "."}}}
	case C:
		args := []string{"clang", "--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wl,--strip-debug", "-o", out}
		return []Step{{Args: append(args, p.src...)}}
	case WAT:
		return []Step{{Args: []string{"wat2wasm", p.src[0], "-o", out}}}
	default: // AssemblyScript
		return []Step{{Args: []string{filepath.Join("node_modules", ".bin", "asc"), p.src[0], "--config", "asconfig.json", "-o", out}}}
	}
}

// BuildError is a toolchain command that failed: the project's own error, shown above it.
type BuildError struct {
	Step Step
	Err  error
}

func (e *BuildError) Error() string { return fmt.Sprintf("%s: %v", e.Step, e.Err) }
func (e *BuildError) Unwrap() error { return e.Err }

// Build checks p's tools and runs its steps, each printed on log before it runs; the tools'
// own output goes to log too. It returns a *ToolError, a *BuildError or ctx's error.
func (p Project) Build(ctx context.Context, log io.Writer) error {
	if err := p.CheckTools(ctx); err != nil {
		return err
	}
	for _, s := range p.Steps() {
		fmt.Fprintf(log, "%s\n", s)
		cmd := exec.CommandContext(ctx, s.Args[0], s.Args[1:]...)
		if strings.ContainsRune(s.Args[0], filepath.Separator) {
			// A project-local tool, relative to the project. Absolute: exec takes a relative
			// Path from Dir, which is relative to our working directory already.
			abs, err := filepath.Abs(filepath.Join(p.Dir, s.Args[0]))
			if err != nil {
				return &BuildError{Step: s, Err: err}
			}
			cmd.Path = abs
		}
		cmd.Dir = p.Dir
		cmd.Env = append(os.Environ(), s.Env...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &BuildError{Step: s, Err: err}
		}
	}
	return nil
}
