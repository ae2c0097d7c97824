package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// addressSpace is the process's virtual memory size, bytes (the first field of
// /proc/self/statm, in pages).
func addressSpace() (uint64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	var pages uint64
	if _, err := fmt.Sscan(string(b), &pages); err != nil {
		return 0, fmt.Errorf("/proc/self/statm: %w", err)
	}
	return pages * uint64(os.Getpagesize()), nil
}

func fileAtime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Atim.Unix())
	}
	return time.Time{}
}

func setRlimits(as, cpuSecs uint64) error {
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: as, Max: as}); err != nil {
		return err
	}
	// The soft limit sends SIGXCPU, which Go ignores; the hard limit one second later kills.
	return syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: cpuSecs, Max: cpuSecs + 1})
}

// childProcAttr kills a compiling child when its parent dies: an orphan would keep compiling
// a hostile module with nobody waiting for it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
