package sandbox

import (
	"context"
	"testing"
	"time"

	"faas/samples"
	"faas/task"
)

// A host call asked to move a guest-sized amount of data stops at the task's deadline, within
// one chunk: the task is a timeout that ends near its deadline. (Before chunking, the 1 GiB
// random_get ran 3.4 s and the 64 GiB fd_write 2.4 s past a 100 ms deadline on the 2-core
// machine: the bound below is loose for a shared machine yet far under both.)
func TestHostCallsChunked(t *testing.T) {
	s := sharedSandbox(t)
	for _, c := range []struct {
		name   string
		wasm   []byte
		limits task.Limits
		kind   task.Kind
	}{
		{"random_get of 1 GiB", samples.RandomBomb, task.Limits{TimeoutMs: 100, MemoryMB: 1024}, task.KindTimeout},
		{"random_bomb without the memory", samples.RandomBomb, task.Limits{TimeoutMs: 5000, MemoryMB: 64}, task.KindOutOfMemory},
		{"fd_write of 64 GiB", samples.WriteBomb, task.Limits{TimeoutMs: 100}, task.KindTimeout},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := s.Run(context.Background(), load(t, s, c.wasm), "bomb", nil, c.limits)
			check(t, res, err, outcome{kind: c.kind})
			if over := res.Duration - time.Duration(c.limits.TimeoutMs)*time.Millisecond; over > time.Second {
				t.Errorf("ran %v past its deadline", over)
			}
		})
	}
}

// Writes and random reads go through whole, however they are chunked.
func TestChunkedWriterWhole(t *testing.T) {
	st := newRunState(sharedSandbox(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st.begin(ctx, cancel, nil, task.Limits{StdoutBytes: 8 << 20}.WithDefaults())
	defer st.end()
	p := make([]byte, 3*hostChunk+5)
	if n, err := (randSource{st}).Read(p); n != len(p) || err != nil {
		t.Fatalf("randSource.Read = %d, %v; want %d", n, err, len(p))
	}
	w := chunkedWriter{st, &st.stdout}
	if n, err := w.Write(p); n != len(p) || err != nil || string(st.stdout.buf) != string(p) {
		t.Fatalf("chunkedWriter.Write = %d, %v; kept %d bytes", n, err, len(st.stdout.buf))
	}
	cancel()
	if n, err := w.Write(p); n != 0 || err == nil {
		t.Fatalf("a write after the end = %d, %v; want 0 and an error", n, err)
	}
}
