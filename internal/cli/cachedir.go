package cli

import (
	"os"
	"syscall"
)

// checkCacheDir refuses a compilation cache that someone else could write: its entries are
// machine code that faas loads and runs as itself (wazero checks an entry's checksum, which
// a writer can recompute, not who wrote it). The directory must belong to the user running
// faas and not be writable by group or others.
func checkCacheDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return usagef("--cache-dir: %v", err)
	}
	if !fi.IsDir() {
		return usagef("--cache-dir %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return usagef("--cache-dir %s belongs to uid %d, not to the user running faas (uid %d): "+
			"its compiled code would run as you; use a directory of your own", dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return usagef("--cache-dir %s is writable by group or others (mode %04o): anyone who can "+
			"write there can make faas run their code; chmod go-w it or use another directory", dir, fi.Mode().Perm())
	}
	return nil
}
