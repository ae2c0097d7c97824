package sandbox

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// This file: forgetting a module everywhere the Sandbox keeps it, when its last function was
// deleted (docs/RATIONALE.md, "Deletion forgets").

// modulesDir, in the cache directory, maps a module's hash to the key of its instrumented
// bytes in indexDir: the only way from a hash to the cache file wazero wrote for it (wazero
// names its files by a digest of its own that includes CPU features).
const modulesDir = "faas-modules"

// remember records that module hash compiles from the instrumented bytes of key. A failure
// only costs the eviction of that file later (trimming still bounds the cache).
func (iso *isolator) remember(hash, key string) {
	if !isHash(hash) {
		return
	}
	dir := filepath.Join(iso.dir, modulesDir)
	if err := os.MkdirAll(dir, 0o700); err == nil {
		_ = os.WriteFile(filepath.Join(dir, hash), []byte(key), 0o600)
	}
}

// diskFiles returns the files of module hash in the cache directory: its entry in
// modulesDir, its index entry and the compiled code (those that are recorded).
func (iso *isolator) diskFiles(hash string) (mapping, index, code string) {
	mapping = filepath.Join(iso.dir, modulesDir, hash)
	key, err := os.ReadFile(mapping)
	if err != nil || !isHash(string(key)) {
		return mapping, "", ""
	}
	index = filepath.Join(iso.dir, indexDir, string(key))
	rel, err := os.ReadFile(index)
	if err != nil || !validRel(string(rel)) {
		return mapping, index, ""
	}
	return mapping, index, filepath.Join(iso.dir, string(rel))
}

// isHash accepts only what Hash returns (64 lowercase hex digits): a hash names files here,
// and it may come from the network.
func isHash(h string) bool {
	if len(h) != 64 || strings.ToLower(h) != h {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// Evict forgets the module with this hash: it leaves the compiled-module cache (closed at
// once, or when the last task running it ends: a running task finishes) and, with
// isolation, its compiled code leaves the on-disk cache. A module the Sandbox does not hold
// is no error. A Load or Validate of the same bytes afterwards compiles it again.
//
// Without isolation the on-disk file (if CacheDir is set) is not found: wazero names it by a
// digest of its own; the byte bound of the cache ages it out. Daemons always isolate.
func (s *Sandbox) Evict(ctx context.Context, hash string) error {
	if !isHash(hash) {
		return fmt.Errorf("sandbox: evict %q: %w", hash, ErrNotHash)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var closeNow *entry
	if e, ok := s.entries[hash]; ok {
		s.lru.Remove(e.elem)
		delete(s.entries, hash)
		s.bytes -= e.bytes
		e.evicted = true
		if e.refs == 0 {
			closeNow = e
		}
	}
	s.mu.Unlock()
	if closeNow != nil {
		closeNow.close(ctx) // with a reactor's snapshot
	}
	if s.iso == nil {
		return nil
	}
	mapping, index, code := s.iso.diskFiles(hash)
	var err error
	for _, p := range []string{code, index, mapping} {
		if p == "" {
			continue
		}
		if rerr := os.Remove(p); rerr != nil && !os.IsNotExist(rerr) && err == nil {
			err = fmt.Errorf("sandbox: evict %s from the on-disk cache: %w", hash, rerr)
		}
	}
	return err
}

// OnDisk reports whether the on-disk cache holds compiled code of the module with this hash
// that the Sandbox can find (with isolation only; false without).
func (s *Sandbox) OnDisk(hash string) bool {
	if s.iso == nil || !isHash(hash) {
		return false
	}
	_, _, code := s.iso.diskFiles(hash)
	if code == "" {
		return false
	}
	fi, err := os.Stat(code)
	return err == nil && fi.Mode().IsRegular()
}
