package executor

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"faas/samples"
	"faas/sandbox"
	"faas/task"
)

// countingSource serves one module slowly and counts the fetches.
type countingSource struct {
	wasm    []byte
	fetches atomic.Int32
}

func (s *countingSource) Module(ctx context.Context, hash string) ([]byte, error) {
	s.fetches.Add(1)
	time.Sleep(50 * time.Millisecond) // the tasks all wait while it is on its way
	return s.wasm, nil
}

// TestOneFetchPerModule: tasks of one module that start together fetch it once, and later
// tasks find it compiled (a remote worker asks its dispatcher once per module).
func TestOneFetchPerModule(t *testing.T) {
	sb, err := sandbox.New(context.Background(), sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(context.Background())
	src := &countingSource{wasm: samples.DoubleC}
	ex := New(sb, src, "test")
	hash := sandbox.Hash(samples.DoubleC)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := ex.Execute(t.Context(), task.Task{ID: "t", Name: "double", ModuleHash: hash, Input: []byte("21"), Limits: task.DefaultLimits()})
			if err != nil || out.Failure != nil || string(out.Stdout) != "42" {
				t.Errorf("task %d: %q %+v %v", i, out.Stdout, out.Failure, err)
			}
		}()
	}
	wg.Wait()
	if n := src.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 8 tasks of one module, want 1", n)
	}
}

// A task whose context ends while it waits for another task's fetch stops; the fetch goes on
// for the others.
func TestWaitingTaskStops(t *testing.T) {
	sb, err := sandbox.New(context.Background(), sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(context.Background())
	src := &countingSource{wasm: samples.DoubleC}
	ex := New(sb, src, "test")
	hash := sandbox.Hash(samples.DoubleC)
	tk := task.Task{ID: "t", Name: "double", ModuleHash: hash, Input: []byte("21"), Limits: task.DefaultLimits()}
	first := make(chan error, 1)
	go func() {
		out, err := ex.Execute(t.Context(), tk)
		if err == nil && out.Failure != nil {
			err = out.Failure
		}
		first <- err
	}()
	time.Sleep(10 * time.Millisecond) // the first fetch is under way
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := ex.Execute(ctx, tk); err == nil {
		t.Fatal("a cancelled task waiting for a fetch did not stop")
	}
	if err := <-first; err != nil {
		t.Fatalf("the fetching task: %v", err)
	}
}
