package store

import "fmt"

// Namespaces: every function and task belongs to one. Ids (uuids) stay global; names, the
// function list and the queues are per namespace. The default namespace keeps the keys
// faas used before namespaces existed, so an existing Redis needs no migration.

// DefaultNamespace is the namespace of a server without API keys, and of records written
// before namespaces existed (they carry no namespace field).
const DefaultNamespace = "default"

// CheckNamespace enforces the namespace rule: 1–64 characters of A-Z a-z 0-9 . _ -
// (they appear inside Redis keys, so no ':' or spaces).
func CheckNamespace(ns string) error {
	if ns == "" || len(ns) > 64 {
		return fmt.Errorf("namespace %q: want 1-64 characters of A-Z a-z 0-9 . _ -", ns)
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("namespace %q: character %q at position %d is outside A-Z a-z 0-9 . _ -", ns, c, i+1)
		}
	}
	return nil
}

// nsField is how scripts and records spell a namespace: "" for the default one (its keys
// and records are those of faas before namespaces). nsOrDefault is the way back.
func nsField(ns string) string {
	if ns == DefaultNamespace {
		return ""
	}
	return ns
}

// nsOrDefault maps the empty namespace (records written before namespaces) to the default.
func nsOrDefault(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}
