package server

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"faas/store"
)

// API keys: a key file maps keys to namespaces, one `NAMESPACE KEY [option=value ...]` per
// line, `#` starting a comment. Options set the namespace's quotas (see Quota); a namespace
// may have several keys (to rotate them), and its options may be given on any of its lines.
//
// Keys are kept only as SHA-256 digests and compared in constant time, all of them on every
// request (no early exit), so neither the answer's timing nor a memory dump reveals a key.

// MinKeyLen is the shortest key accepted in a key file: a short key is guessable.
const MinKeyLen = 20

// Quota bounds what one namespace may do. A zero field means no bound.
type Quota struct {
	// Rate is the submitted tasks per second a namespace may sustain (token bucket);
	// Burst is the bucket's size (default: Rate, at least 1). Over it: 429 rate_limited.
	Rate  float64
	Burst int64
	// Tasks caps the namespace's queued plus running tasks. Over it: 429 quota_exceeded.
	Tasks int64
	// ModuleBytes caps the bytes of the modules of the namespace's functions.
	ModuleBytes int64
	// TimeoutMs and MemoryMB cap what a registration may ask for (400 beyond, as the
	// server-wide ceilings).
	TimeoutMs int64
	MemoryMB  int64
	// Weight is the namespace's share of the dispatchers when several namespaces have
	// queued tasks: weight 3 gets 3 tasks for a weight-1 namespace's one (0 or 1: 1).
	Weight int64
}

// quotaOptions are the option names of a key file line, with where each goes.
func quotaOptions(q *Quota) map[string]func(string) error {
	intOpt := func(dst *int64) func(string) error {
		return func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("want a whole number of 0 or more, got %q", v)
			}
			*dst = n
			return nil
		}
	}
	return map[string]func(string) error{
		"rate": func(v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f != f {
				return fmt.Errorf("want a number of 0 or more, got %q", v)
			}
			q.Rate = f
			return nil
		},
		"burst":        intOpt(&q.Burst),
		"tasks":        intOpt(&q.Tasks),
		"module_bytes": intOpt(&q.ModuleBytes),
		"timeout_ms":   intOpt(&q.TimeoutMs),
		"memory_mb":    intOpt(&q.MemoryMB),
		"weight": func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > store.MaxWeight {
				return fmt.Errorf("want a whole number from 1 to %d, got %q", store.MaxWeight, v)
			}
			q.Weight = n
			return nil
		},
	}
}

// KeyRing is a parsed key file. Immutable once built; the server swaps whole rings.
type KeyRing struct {
	keys   []keyEntry
	quotas map[string]Quota // namespace → the options its lines set, over the defaults
}

type keyEntry struct {
	digest [sha256.Size]byte
	ns     string
	admin  bool // admin=true on its line: may read operator views (GET /workers)
}

// Weights returns the namespaces' claim weights that are not 1 (store.SetWeights).
func (k *KeyRing) Weights() map[string]int {
	out := map[string]int{}
	if k == nil {
		return out
	}
	for ns, q := range k.quotas {
		if q.Weight > 1 {
			out[ns] = int(q.Weight)
		}
	}
	return out
}

// Namespaces returns the namespaces of the ring (for logs: never the keys).
func (k *KeyRing) Namespaces() []string {
	out := make([]string, 0, len(k.quotas))
	for ns := range k.quotas {
		out = append(out, ns)
	}
	return out
}

// Quota returns the quota of namespace ns.
func (k *KeyRing) Quota(ns string) Quota { return k.quotas[ns] }

// lookup returns the namespace of key, comparing with every entry in constant time.
func (k *KeyRing) lookup(key string) (string, bool) {
	e, ok := k.entry(key)
	return e.ns, ok
}

// entry returns the entry of key, comparing with every entry in constant time.
func (k *KeyRing) entry(key string) (keyEntry, bool) {
	d := sha256.Sum256([]byte(key))
	found := -1
	for i := range k.keys {
		if subtle.ConstantTimeCompare(d[:], k.keys[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return keyEntry{}, false
	}
	return k.keys[found], true
}

// ParseKeys reads a key file; defaults are the quotas of a namespace whose lines set none.
// Errors name the line but never show a key.
func ParseKeys(r io.Reader, defaults Quota) (*KeyRing, error) {
	ring := &KeyRing{quotas: make(map[string]Quota)}
	seen := make(map[[sha256.Size]byte]bool)
	var err error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: want NAMESPACE KEY [option=value ...]", line)
		}
		ns, key := f[0], f[1]
		if err := store.CheckNamespace(ns); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(key) < MinKeyLen {
			return nil, fmt.Errorf("line %d: the key of namespace %s is shorter than %d characters ('faas apikey %s' makes one)",
				line, ns, MinKeyLen, ns)
		}
		d := sha256.Sum256([]byte(key))
		if seen[d] {
			return nil, fmt.Errorf("line %d: this key is already on an earlier line", line)
		}
		seen[d] = true
		q, ok := ring.quotas[ns]
		if !ok {
			q = defaults
		}
		opts := quotaOptions(&q)
		admin := false
		for _, o := range f[2:] {
			name, v, ok := strings.Cut(o, "=")
			if name == "admin" && ok {
				// Of this key, not of its namespace: an operator's key may sit in any.
				if admin, err = strconv.ParseBool(v); err != nil {
					return nil, fmt.Errorf("line %d: admin: want true or false, got %q", line, v)
				}
				continue
			}
			set := opts[name]
			if !ok || set == nil {
				return nil, fmt.Errorf("line %d: unknown option %q (want rate, burst, tasks, module_bytes, timeout_ms, memory_mb =VALUE or admin=true)", line, name)
			}
			if err := set(v); err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", line, name, err)
			}
		}
		ring.quotas[ns] = q
		ring.keys = append(ring.keys, keyEntry{digest: d, ns: ns, admin: admin})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the key file: %w", err)
	}
	if len(ring.keys) == 0 {
		return nil, errors.New("the key file holds no key: every request would be refused")
	}
	return ring, nil
}

// LoadKeys reads and parses the key file at path.
func LoadKeys(path string, defaults Quota) (*KeyRing, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	ring, err := ParseKeys(f, defaults)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return ring, nil
}

// NewKey returns a new random API key: "faas_" and 32 random bytes in base64url.
func NewKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return "faas_" + base64.RawURLEncoding.EncodeToString(b), nil
}
