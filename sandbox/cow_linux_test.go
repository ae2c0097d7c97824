package sandbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
	"unsafe"

	"faas/samples"
	"faas/task"
)

// TestImageGivesBackTheSnapshot: memory an instance wrote and grew comes back from give as
// the image left it, whatever the instance wrote where.
func TestImageGivesBackTheSnapshot(t *testing.T) {
	const pages = 64
	img0 := make([]byte, pages*4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for p := 0; p < pages; p++ {
		if p%3 != 0 { // every third page a hole of the memfd
			for i := 0; i < 4096; i += 7 {
				img0[p*4096+i] = byte(rng.Uint32())
			}
		}
	}
	img, err := newCowImage(img0)
	if err != nil {
		t.Skip("no copy-on-write images here:", err)
	}
	defer img.close()
	const limit = 4 * pages * 4096
	for round := 0; round < 20; round++ {
		r, err := img.take(limit)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r[:len(img0)], img0) {
			t.Fatalf("round %d: the image part differs from the snapshot", round)
		}
		if !bytes.Equal(r[len(img0):limit], make([]byte, limit-len(img0))) {
			t.Fatalf("round %d: memory past the image is not zero", round)
		}
		// Write some pages of the image (holes included), read others, grow past it.
		used := uint64(len(img0))
		for k := 0; k < 30; k++ {
			at := rng.IntN(limit / 2)
			r[at] ^= byte(rng.Uint32()) | 1
			_ = r[rng.IntN(len(img0))]
			used = max(used, uint64(at+1))
		}
		img.give(r, used)
	}
	img.mu.Lock()
	spare := len(img.spare)
	img.mu.Unlock()
	if spare != 1 {
		t.Fatalf("%d spare reservations after one task at a time, want 1", spare)
	}
}

// TestImageConcurrentTasks: many goroutines taking and giving back memory of one image each
// see the snapshot, and the image keeps at most maxSpare reservations.
func TestImageConcurrentTasks(t *testing.T) {
	img0 := bytes.Repeat([]byte("snapshot"), 16*4096/8)
	img, err := newCowImage(img0)
	if err != nil {
		t.Skip("no copy-on-write images here:", err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 12; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				r, err := img.take(1 << 20)
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(r[:len(img0)], img0) {
					t.Error("memory taken differs from the snapshot")
				}
				copy(r[4096*(i%16):], "scribbled over by a task")
				r[len(img0)+i] = 1
				img.give(r, uint64(len(img0)+i+1))
			}
		}()
	}
	wg.Wait()
	img.mu.Lock()
	spare, refs := len(img.spare), img.refs
	img.mu.Unlock()
	if spare > maxSpare || refs != 1 {
		t.Fatalf("%d spare (at most %d), %d references (want the cache's 1)", spare, maxSpare, refs)
	}
	img.close()
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.src != nil || len(img.spare) != 0 {
		t.Fatal("closing the image left its mapping or spare reservations")
	}
}

// TestReactorReusedMemory: a Go reactor's tasks, sharing reservations, each start from the
// snapshot (the map they fill is empty, the counter at its snapshot value).
func TestReactorReusedMemory(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Config{CacheDir: testCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	h := load(t, s, samples.ReactorGoMap)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				res, err := s.Run(ctx, h, "m", []byte("x"), task.Limits{})
				if err != nil || res.Failure != nil || string(res.Stdout) != "calls=1 map=0" {
					t.Errorf("%v %v %q", err, res.Failure, res.Stdout)
					return
				}
			}
		}()
	}
	wg.Wait()
	s.mu.Lock()
	img := s.entries[h].rx.snap.image
	s.mu.Unlock()
	img.mu.Lock()
	defer img.mu.Unlock()
	if len(img.spare) == 0 {
		t.Fatal("no reservation kept for the next tasks")
	}
}

// TestImageDropsManyOwnedPages: a task that wrote more of the image than a spare
// reservation may keep resident gets its pages dropped, not copied back: the memory still
// reads as the snapshot, and none of the image's pages is the reservation's own any more.
func TestImageDropsManyOwnedPages(t *testing.T) {
	defer func(v uint64) { keepOwnedBelow = v }(keepOwnedBelow)
	keepOwnedBelow = 8 * 4096
	img0 := bytes.Repeat([]byte("snapshot"), 64*4096/8)
	img, err := newCowImage(img0)
	if err != nil {
		t.Skip("no copy-on-write images here:", err)
	}
	defer img.close()
	ownedPages := func(r []byte) int {
		var bp []byte
		entries, err := pagemap(&bp, uintptr(unsafe.Pointer(&r[0])), img.size/4096)
		if err != nil {
			t.Skip("no pagemap:", err)
		}
		n := 0
		for i := 0; i < len(entries); i += 8 {
			e := binary.LittleEndian.Uint64(entries[i:])
			if e&(1<<63) != 0 && e&(1<<61) == 0 {
				n++
			}
		}
		return n
	}
	for _, pages := range []int{4, 32} { // under the bound: copied back; over it: dropped
		r, err := img.take(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		for p := 0; p < pages; p++ {
			r[p*4096] = 'X'
		}
		img.give(r, uint64(len(img0)))
		r, err = img.take(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r[:len(img0)], img0) {
			t.Fatalf("%d pages written: the memory given back is not the snapshot", pages)
		}
		kept := ownedPages(r)
		if pages == 4 && kept != 4 || pages == 32 && kept != 0 {
			t.Fatalf("%d pages written: %d kept as the reservation's own", pages, kept)
		}
		img.give(r, uint64(len(img0)))
	}
}
