package main

import (
	"os"
	"strconv"
	"strings"
)

// rssMiB reads a field of /proc/self/status (VmRSS: resident now; VmHWM: the peak), in MiB;
// 0 where there is no /proc. The whole process: dispatcher, workers, sandboxes, bookkeeping.
func rssMiB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
