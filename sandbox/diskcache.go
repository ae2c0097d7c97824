package sandbox

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultCacheMaxBytes bounds the on-disk compilation cache when Config.CacheMaxBytes is 0:
// ~120 Go modules of the size of samples/double/double_go.wasm.
const DefaultCacheMaxBytes = 1 << 30

// staleTemp is how old a wazero temp file or a child's directory must be before trimming
// takes it for the leftover of a process that died rather than a write in progress.
const staleTemp = time.Hour

// recentUse protects the files used last from eviction: a file a child just wrote is read
// by its parent right after, and must still be there (without it the parent would compile
// the module itself, unbounded).
const recentUse = 30 * time.Second

// diskCache bounds wazero's on-disk compilation cache by bytes, evicting the least recently
// used files first. Use is the later of a file's mtime and atime: the isolator sets both when
// its parent reads a file; without isolation atime is all there is (on relatime mounts it
// moves at most once a day, so the order is then coarser).
type diskCache struct {
	dir      string
	max      int64
	log      *slog.Logger
	trimming atomic.Bool
}

// trimSoon trims the cache in the background, one trim at a time: a compilation that just
// wrote a file does not wait for a directory walk.
func (c *diskCache) trimSoon() {
	if c == nil || !c.trimming.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.trimming.Store(false)
		c.trim()
	}()
}

type cacheFile struct {
	path string
	size int64
	used time.Time
}

// trim removes the least recently used cache files until the cache holds at most max bytes,
// the leftovers of processes that died while writing, and index entries (isolate.go) of
// files evicted by an earlier trim, and the modulesDir entries (evict.go) of index entries
// gone. It returns the bytes kept.
func (c *diskCache) trim() int64 {
	var files []cacheFile
	var total int64
	now := time.Now()
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed under us, or unreadable: not ours to fail on
		}
		rel, _ := filepath.Rel(c.dir, p)
		top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		if d.IsDir() {
			if strings.HasPrefix(top, ".compile-") && rel == top {
				if fi, err := d.Info(); err == nil && now.Sub(fi.ModTime()) > staleTemp {
					_ = os.RemoveAll(p)
				}
				return filepath.SkipDir
			}
			return nil
		}
		if top == indexDir && d.Type().IsRegular() {
			// An index entry whose cache file was evicted: a later load runs a child again.
			if rel, err := os.ReadFile(p); err == nil && validRel(string(rel)) {
				if _, err := os.Stat(filepath.Join(c.dir, string(rel))); os.IsNotExist(err) {
					_ = os.Remove(p)
				}
			}
			return nil
		}
		if top == modulesDir && d.Type().IsRegular() {
			// A module's entry whose index entry went: nothing left to evict by its hash.
			if key, err := os.ReadFile(p); err == nil && isHash(string(key)) {
				if _, err := os.Stat(filepath.Join(c.dir, indexDir, string(key))); os.IsNotExist(err) {
					_ = os.Remove(p)
				}
			}
			return nil
		}
		if !strings.HasPrefix(top, "wazero-") || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if strings.HasSuffix(p, ".tmp") {
			if now.Sub(fi.ModTime()) > staleTemp {
				_ = os.Remove(p)
			}
			return nil
		}
		f := cacheFile{path: p, size: fi.Size(), used: fi.ModTime()}
		if at := fileAtime(fi); at.After(f.used) {
			f.used = at
		}
		files = append(files, f)
		total += f.size
		return nil
	})
	if total <= c.max {
		return total
	}
	sort.Slice(files, func(i, j int) bool { return files[i].used.Before(files[j].used) })
	evicted := 0
	for _, f := range files {
		if total <= c.max {
			break
		}
		if now.Sub(f.used) < recentUse {
			continue // its compiler may still be about to read it
		}
		if err := os.Remove(f.path); err == nil || os.IsNotExist(err) {
			total -= f.size
			evicted++
		}
	}
	c.log.Debug("compilation cache trimmed", "dir", c.dir, "evicted", evicted, "bytes", total, "max", c.max)
	return total
}
