//go:build unix

package sandbox

import "syscall"

// reserve maps n bytes of zeroed, not yet committed memory (pages are only backed when the
// guest touches them), or returns nil if the system refuses.
func reserve(n uint64) []byte {
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return b
}

func unreserve(b []byte) { _ = syscall.Munmap(b) }
