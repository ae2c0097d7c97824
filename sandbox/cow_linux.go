package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cowImage is a reactor snapshot's linear memory in a memfd (snapshot.go). Each instance maps
// it MAP_PRIVATE over the start of its memory's reservation: copy-on-write, so setting up an
// instance copies nothing, and a task pays only for the pages it writes (one page fault and
// one 4 KiB copy each). Only the non-zero chunks are written to the file; the rest are holes,
// read as zeros.
type cowImage struct {
	fd   int
	size uint64
}

func newCowImage(mem []byte) (*cowImage, error) {
	if len(mem) == 0 || len(mem)%unix.Getpagesize() != 0 {
		return nil, fmt.Errorf("memory of %d bytes cannot be mapped", len(mem))
	}
	fd, err := unix.MemfdCreate("faas-snapshot", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	img := &cowImage{fd: fd, size: uint64(len(mem))}
	if err := img.fill(mem); err != nil {
		img.close()
		return nil, err
	}
	return img, nil
}

func (c *cowImage) fill(mem []byte) error {
	if err := unix.Ftruncate(c.fd, int64(len(mem))); err != nil {
		return fmt.Errorf("ftruncate: %w", err)
	}
	for _, r := range nonZeroRuns(mem) {
		for off := r[0]; off < r[1]; {
			n, err := unix.Pwrite(c.fd, mem[off:r[1]], int64(off))
			if err != nil {
				return fmt.Errorf("pwrite: %w", err)
			}
			off += n
		}
	}
	// No one may change the image once instances map it, not even by mistake.
	_, err := unix.FcntlInt(uintptr(c.fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL)
	if err != nil {
		return fmt.Errorf("sealing: %w", err)
	}
	return nil
}

// mapInto maps the image copy-on-write over the first c.size bytes of r, a reservation of
// reserve (mmap_unix.go) at least that long.
func (c *cowImage) mapInto(r []byte) error {
	if uint64(len(r)) < c.size {
		return fmt.Errorf("reservation of %d bytes below the image's %d", len(r), c.size)
	}
	_, err := unix.MmapPtr(c.fd, 0, unsafe.Pointer(&r[0]), uintptr(c.size),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	return err
}

// readInto copies the image into b: the way to set up an instance when mapping failed.
func (c *cowImage) readInto(b []byte) error {
	for off := 0; off < len(b); {
		n, err := unix.Pread(c.fd, b[off:], int64(off))
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		off += n
	}
	return nil
}

func (c *cowImage) close() { _ = unix.Close(c.fd) }
