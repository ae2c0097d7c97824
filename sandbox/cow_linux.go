package sandbox

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cowImage is a reactor snapshot's linear memory in a memfd (snapshot.go). An instance's
// memory is a reservation (mmap_unix.go) with the image mapped MAP_PRIVATE over its start:
// copy-on-write, so setting up an instance copies nothing, and a task pays only for the
// pages it writes. Only the non-zero chunks are written to the file; the rest are holes, read
// as zeros.
//
// A reservation outlives its task (docs/RATIONALE.md, "Reactor snapshots"): give puts it back
// as the snapshot left it, and take hands it to the next task. Putting back restores the
// pages the task made its own (those /proc/self/pagemap shows present and not the file's) by
// copying the image over them, and drops what the task grew past the image. The pages then
// stay mapped and writable, so the next task takes no page fault on them, and no task maps
// or unmaps anything: mapping, unmapping and the first write to a page read from the image
// all take the process's address-space lock or interrupt the other cores to flush their
// TLBs, which made a sandbox's tasks queue behind each other across cores.
type cowImage struct {
	fd   int
	size uint64
	src  []byte // the image, mapped shared and read-only: what give copies from

	mu     sync.Mutex
	spare  [][]byte // reservations put back, for the next tasks
	refs   int      // the cache's (until close) and one per reservation taken
	closed bool
}

// maxSpare bounds the reservations an image keeps for its next tasks; keepBelow is the most
// memory a task may have used for its reservation to be kept (dropping what it grew frees the
// pages, but not the page tables).
const (
	maxSpare  = 8
	keepBelow = 64 << 20
)

// keepOwnedBelow is the most of the image a put-back reservation keeps as the task's own
// pages, restored by copying (so that the next task takes no fault on them); beyond it they
// are dropped, and each spare reservation of an image stays under this much resident
// memory. A variable for tests.
var keepOwnedBelow uint64 = 2 << 20

func newCowImage(mem []byte) (*cowImage, error) {
	if len(mem) == 0 || len(mem)%unix.Getpagesize() != 0 {
		return nil, fmt.Errorf("memory of %d bytes cannot be mapped", len(mem))
	}
	fd, err := unix.MemfdCreate("faas-snapshot", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	img := &cowImage{fd: fd, size: uint64(len(mem)), refs: 1}
	if err := img.fill(mem); err != nil {
		img.close()
		return nil, err
	}
	if img.src, err = unix.Mmap(fd, 0, len(mem), unix.PROT_READ, unix.MAP_SHARED); err != nil {
		img.close()
		return nil, fmt.Errorf("mapping the image: %w", err)
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

// take returns memory for one instance: a reservation of at least n bytes holding the image
// at its start and zeros after it.
func (c *cowImage) take(n uint64) ([]byte, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("the image is closed")
	}
	c.refs++
	for i := len(c.spare) - 1; i >= 0; i-- {
		if r := c.spare[i]; uint64(len(r)) >= n {
			c.spare = append(c.spare[:i], c.spare[i+1:]...)
			c.mu.Unlock()
			return r, nil
		}
	}
	c.mu.Unlock()
	r := reserve(n)
	if r == nil {
		c.unref()
		return nil, fmt.Errorf("could not reserve %d bytes", n)
	}
	_, err := unix.MmapPtr(c.fd, 0, unsafe.Pointer(&r[0]), uintptr(c.size),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	if err != nil {
		unreserve(r)
		c.unref()
		return nil, err
	}
	return r, nil
}

// give takes back a reservation from take whose instance used its first used bytes: put back
// as take hands it out and kept for the next task, or unmapped.
func (c *cowImage) give(r []byte, used uint64) {
	c.mu.Lock()
	keep := !c.closed && len(c.spare) < maxSpare && used <= keepBelow
	c.mu.Unlock()
	if !keep || !c.restore(r, used) {
		unreserve(r)
		c.unref()
		return
	}
	c.mu.Lock()
	if c.closed || len(c.spare) >= maxSpare {
		c.mu.Unlock()
		unreserve(r)
		c.unref()
		return
	}
	c.spare = append(c.spare, r)
	c.mu.Unlock()
	c.unref()
}

// restore puts r back as take hands it out: every page of the image the task may have
// written (present and not the file's own page, or swapped out) gets the image's bytes again,
// and what the task grew past the image is dropped (read as zeros again). It reports false
// when it could not tell which pages those are.
func (c *cowImage) restore(r []byte, used uint64) bool {
	ps := uint64(unix.Getpagesize())
	bp := pagemapBufs.Get().(*[]byte)
	defer pagemapBufs.Put(bp)
	entries, err := pagemap(bp, uintptr(unsafe.Pointer(&r[0])), c.size/ps)
	if err != nil {
		return false
	}
	const present, swapped, file = 1 << 63, 1 << 62, 1 << 61
	owned := func(i uint64) bool {
		e := binary.LittleEndian.Uint64(entries[i*8:])
		return (e&present != 0 && e&file == 0) || e&swapped != 0
	}
	n := uint64(len(entries) / 8)
	var ownedPages uint64
	for i := uint64(0); i < n; i++ {
		if owned(i) {
			ownedPages++
		}
	}
	if ownedPages*ps > keepOwnedBelow {
		// Kept as copies, so many pages would stay resident in every spare reservation:
		// drop them instead (read from the image again, by the next task's faults).
		return unix.Madvise(r[:max(min((used+ps-1)/ps*ps, uint64(len(r))), c.size)], unix.MADV_DONTNEED) == nil
	}
	for i := uint64(0); i < n; {
		if !owned(i) {
			i++
			continue
		}
		j := i + 1
		for j < n && owned(j) {
			j++
		}
		copy(r[i*ps:j*ps], c.src[i*ps:j*ps])
		i = j
	}
	if used = min((used+ps-1)/ps*ps, uint64(len(r))); used > c.size {
		if unix.Madvise(r[c.size:used], unix.MADV_DONTNEED) != nil {
			return false
		}
	}
	return true
}

var pagemapFile struct {
	once sync.Once
	f    *os.File
	err  error
}

// pagemapBufs holds buffers for pagemap, which restore needs once per task.
var pagemapBufs = sync.Pool{New: func() any { return new([]byte) }}

// pagemap reads into *bp the /proc/self/pagemap entries (8 bytes each, little-endian) of n
// pages from addr.
func pagemap(bp *[]byte, addr uintptr, n uint64) ([]byte, error) {
	pagemapFile.once.Do(func() { pagemapFile.f, pagemapFile.err = os.Open("/proc/self/pagemap") })
	if pagemapFile.err != nil {
		return nil, pagemapFile.err
	}
	if uint64(cap(*bp)) < n*8 {
		*bp = make([]byte, n*8)
	}
	buf := (*bp)[:n*8]
	if _, err := pagemapFile.f.ReadAt(buf, int64(addr/uintptr(unix.Getpagesize()))*8); err != nil {
		return nil, err
	}
	return buf, nil
}

// readInto copies the image into b: the way to set up an instance when mapping failed.
func (c *cowImage) readInto(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src == nil {
		return fmt.Errorf("the image is closed")
	}
	copy(b, c.src)
	return nil
}

// close drops the cache's hold on the image: its spare reservations are unmapped, and the
// image itself once the last instance taking memory from it gives it back.
func (c *cowImage) close() {
	c.mu.Lock()
	spare := c.spare
	c.spare, c.closed = nil, true
	c.mu.Unlock()
	for _, r := range spare {
		unreserve(r)
	}
	c.unref()
}

func (c *cowImage) unref() {
	c.mu.Lock()
	c.refs--
	last := c.refs == 0
	src := c.src
	if last {
		c.src = nil
	}
	c.mu.Unlock()
	if last {
		if src != nil {
			_ = unix.Munmap(src)
		}
		_ = unix.Close(c.fd)
	}
}
