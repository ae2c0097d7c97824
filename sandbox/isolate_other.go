//go:build !linux

package sandbox

import (
	"errors"
	"io/fs"
	"syscall"
	"time"
)

func fileAtime(fs.FileInfo) time.Time { return time.Time{} }

func addressSpace() (uint64, error) { return 0, errors.ErrUnsupported }

func setRlimits(as, cpuSecs uint64) error {
	return errors.New("compilation isolation needs Linux (RLIMIT_AS)")
}

func childProcAttr() *syscall.SysProcAttr { return nil }
