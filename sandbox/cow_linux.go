package sandbox

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
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

	// hot is the pages tasks write, learned from the first tasks (learn): each mapping
	// populates them writable at once (prefault), so that no task breaks copy-on-write on
	// them one fault at a time. A page first read then written is mapped twice, and the
	// second time the kernel must flush the old mapping from every CPU running a thread of
	// the process: an interprocessor interrupt per page, which serialized the tasks of a
	// sandbox across cores (docs/RATIONALE.md, "Reactor snapshots").
	hot     atomic.Pointer[[]pageRun]
	lessons atomic.Int32 // tasks still to learn from
	mu      sync.Mutex   // one learner at a time
	written []bool       // per page of the image: written by a task learned from
}

// hotGap is the widest gap between hot pages populated with them.
const hotGap = 2

// pageRun is a run of pages [first, first+n) of an image.
type pageRun struct{ first, n uint32 }

func newCowImage(mem []byte) (*cowImage, error) {
	if len(mem) == 0 || len(mem)%unix.Getpagesize() != 0 {
		return nil, fmt.Errorf("memory of %d bytes cannot be mapped", len(mem))
	}
	fd, err := unix.MemfdCreate("faas-snapshot", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	img := &cowImage{fd: fd, size: uint64(len(mem))}
	img.lessons.Store(learnFrom)
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
	if err != nil {
		return err
	}
	if hot := c.hot.Load(); hot != nil {
		ps := uint64(unix.Getpagesize())
		for _, h := range *hot {
			// An error (a kernel before 5.14) only leaves the pages to fault one by one.
			_ = unix.Madvise(r[uint64(h.first)*ps:uint64(h.first+h.n)*ps], unix.MADV_POPULATE_WRITE)
		}
	}
	return nil
}

// learn records which pages of the image the task that mapped it into r wrote (those no
// longer mapped from the image), while the image has lessons left.
func (c *cowImage) learn(r []byte) {
	if c.lessons.Load() <= 0 || !c.mu.TryLock() {
		return
	}
	defer c.mu.Unlock()
	if c.lessons.Add(-1) < 0 {
		return
	}
	ps := uint64(unix.Getpagesize())
	pages := c.size / ps
	entries, err := pagemap(uintptr(unsafe.Pointer(&r[0])), pages)
	if err != nil {
		c.lessons.Store(0)
		return
	}
	if c.written == nil {
		c.written = make([]bool, pages)
	}
	for i, e := range entries {
		// Present, and not a page of the file: the task's own copy of it.
		if e&(1<<63) != 0 && e&(1<<61) == 0 {
			c.written[i] = true
		}
	}
	var runs []pageRun
	for i := uint32(0); i < uint32(pages); i++ {
		if !c.written[i] {
			continue
		}
		// A gap of a page or two is populated with its neighbours: a page copied for
		// nothing costs less than a system call more.
		if n := len(runs); n > 0 && runs[n-1].first+runs[n-1].n+hotGap >= i {
			runs[n-1].n = i + 1 - runs[n-1].first
			continue
		}
		runs = append(runs, pageRun{first: i, n: 1})
	}
	c.hot.Store(&runs)
}

// pagemap reads the /proc/self/pagemap entries of n pages from addr.
func pagemap(addr uintptr, n uint64) ([]uint64, error) {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n*8)
	if _, err := f.ReadAt(buf, int64(addr/uintptr(unix.Getpagesize()))*8); err != nil {
		return nil, err
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(buf[i*8:])
	}
	return out, nil
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
