// Package scaffold writes and builds function projects: the templates behind `faas new`
// (a working `double` in Go, C, WebAssembly text or AssemblyScript) and the toolchain
// detection behind `faas build`. It runs no Wasm: `faas run` and the server do.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"faas/fn"
)

// The languages `faas new` writes, and `faas build` builds.
const (
	Go             = "go"
	C              = "c"
	WAT            = "wat"
	AssemblyScript = "assemblyscript"
)

// Langs lists the languages in the order help texts show them.
var Langs = []string{Go, C, WAT, AssemblyScript}

//go:embed templates
var templates embed.FS

// ErrExists is matched (errors.Is) by New's refusal of a directory that is not empty, or
// of a file where the project's directory would go.
var ErrExists = errors.New("exists and is not an empty directory")

// NameError says why a project name was refused, and what is allowed.
type NameError struct{ Name, Why string }

func (e *NameError) Error() string {
	return fmt.Sprintf("bad NAME %q: %s; a NAME is 1 to 64 of a-z 0-9 - _, starting with a letter (it names the module, the .wasm and the function)", e.Name, e.Why)
}

// CheckName accepts what is at once a registrable function name, a Go module path, an npm
// package name and a file name on every system: lower case, because npm wants it and
// case-insensitive file systems would otherwise mix two projects up.
func CheckName(name string) error {
	switch {
	case name == "":
		return &NameError{name, "it is empty"}
	case len(name) > 64:
		return &NameError{name, fmt.Sprintf("it is %d characters long", len(name))}
	case name[0] < 'a' || name[0] > 'z':
		return &NameError{name, "it does not start with a lower-case letter"}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return &NameError{name, fmt.Sprintf("character %d (%q) is not allowed", i+1, rune(c))}
		}
	}
	return nil
}

// CheckLang refuses a language New does not know, listing those it does.
func CheckLang(lang string) error {
	for _, l := range Langs {
		if l == lang {
			return nil
		}
	}
	return fmt.Errorf("unknown language %q: want one of %s", lang, strings.Join(Langs, ", "))
}

// data is what the templates see.
type data struct {
	Name       string
	Message    string // the WAT template's error message, and its length in bytes
	MessageLen int
}

// file is one file of a new project: its path in the project, and where its text comes from.
type file struct {
	path string
	tmpl string // a template under templates/LANG, or "" with text set
	text string
}

func files(lang, name string) []file {
	readme := file{path: "README.md", text: readme(lang, name)}
	input := file{path: "input.txt", tmpl: "input.txt"}
	switch lang {
	case Go:
		return []file{{path: "main.go", tmpl: "main.go.tmpl"}, {path: "main_test.go", tmpl: "main_test.go.tmpl"},
			{path: "go.mod", tmpl: "go.mod.tmpl"}, {path: "Makefile", tmpl: "Makefile.tmpl"},
			// The helper package, copied in so that the project builds on its own.
			{path: "fn/fn.go", text: strings.ReplaceAll(fn.FnSource, `"faas/fn"`, `"`+name+`/fn"`)},
			{path: "fn/export_wasip1.go", text: fn.ExportSource},
			input, readme}
	case C:
		return []file{{path: name + ".c", tmpl: "main.c.tmpl"}, {path: "Makefile", tmpl: "Makefile.tmpl"}, input, readme}
	case WAT:
		return []file{{path: name + ".wat", tmpl: "main.wat.tmpl"}, {path: "Makefile", tmpl: "Makefile.tmpl"}, input, readme}
	default: // AssemblyScript
		return []file{{path: name + ".ts", tmpl: "main.ts.tmpl"}, {path: "package.json", tmpl: "package.json.tmpl"},
			{path: "asconfig.json", tmpl: "asconfig.json.tmpl"}, {path: ".gitignore", text: "node_modules/\n*.wasm\n"},
			input, readme}
	}
}

// New writes a project of lang called name into dir (created if missing; an existing dir
// must be empty) and returns the paths it wrote, relative to dir, sorted.
func New(dir, lang, name string) ([]string, error) {
	if err := CheckLang(lang); err != nil {
		return nil, err
	}
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%s: %w: it is a file; choose another --dir or NAME", dir, ErrExists)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s: %w (%d entries); choose another --dir or NAME", dir, ErrExists, len(entries))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	msg := name + ": not an integer of at most 18 digits\n"
	d := data{Name: name, Message: strings.ReplaceAll(msg, "\n", `\n`), MessageLen: len(msg)}
	var written []string
	for _, f := range files(lang, name) {
		text := f.text
		if f.tmpl != "" {
			var err error
			if text, err = render(lang+"/"+f.tmpl, d); err != nil {
				return written, err
			}
		}
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return written, fmt.Errorf("creating %s: %w", filepath.Dir(p), err)
		}
		// O_EXCL: never overwrite, even a file that appeared since the directory was read.
		out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return written, fmt.Errorf("writing %s: %w", p, err)
		}
		_, err = out.WriteString(text)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return written, fmt.Errorf("writing %s: %w", p, err)
		}
		written = append(written, f.path)
	}
	sort.Strings(written)
	return written, nil
}

func render(path string, d data) (string, error) {
	src, err := templates.ReadFile("templates/" + path)
	if err != nil {
		return "", fmt.Errorf("scaffold: template %s: %w", path, err)
	}
	t, err := template.New(path).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("scaffold: template %s: %w", path, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("scaffold: template %s: %w", path, err)
	}
	return b.String(), nil
}

// readme is the project's README: how to build, try, register and run it.
func readme(lang, name string) string {
	what := map[string]string{
		Go:             "Go (reactor ABI, package fn; needs Go 1.24 or newer)",
		C:              "C (reactor ABI; needs clang, lld, wasi-libc, libclang-rt-14-dev-wasm32)",
		WAT:            "WebAssembly text (command ABI; needs wabt's wat2wasm)",
		AssemblyScript: "AssemblyScript (reactor ABI, with @assemblyscript/wasi-shim; run `npm install` first)",
	}[lang]
	return fmt.Sprintf(`# %[1]s

A faas function in %[2]s: it reads an integer and writes twice it.

    faas build                                   # writes %[1]s.wasm
    faas run %[1]s.wasm --input-file input.txt   # runs it once, here: prints 42
    faas register %[1]s %[1]s.wasm
    faas exec %[1]s --input 21 --wait
`, name, what)
}
