package sandbox

import (
	"context"
	"testing"

	"faas/samples"
	"faas/task"
)

// TestHotPagesLearned: after its first tasks, a Go reactor's image knows the pages tasks
// write, and the tasks that start with them populated still start from the snapshot.
func TestHotPagesLearned(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Config{CacheDir: testCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	h := load(t, s, samples.ReactorGoMap)
	for i := 0; i < learnFrom+8; i++ {
		res, err := s.Run(ctx, h, "m", []byte("x"), task.Limits{})
		check(t, res, err, outcome{stdout: "calls=1 map=0"})
	}
	s.mu.Lock()
	img := s.entries[h].rx.snap.image
	s.mu.Unlock()
	if img == nil {
		t.Fatal("the snapshot's memory is not mapped from an image")
	}
	hot := img.hot.Load()
	if hot == nil {
		t.Fatal("no hot pages learned")
	}
	n := 0
	for _, r := range *hot {
		n += int(r.n)
		if uint64(r.first+r.n)*4096 > img.size {
			t.Fatalf("hot run %+v beyond the image's %d bytes", r, img.size)
		}
	}
	// A Go run writes its stack, heap and runtime state: some pages, far from all.
	if n == 0 || uint64(n)*4096 >= img.size {
		t.Fatalf("%d hot pages of %d", n, img.size/4096)
	}
	if left := img.lessons.Load(); left > 0 {
		t.Fatalf("%d lessons left after %d tasks", left, learnFrom+8)
	}
	t.Logf("%d hot pages in %d runs, of %d", n, len(*hot), img.size/4096)
}
