package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"faas/internal/redistest"
	"faas/store"
	"faas/task"
)

var prefixes atomic.Int64

// newStore returns a store on client c with a prefix of its own, so tests can share a server.
func newStore(tb testing.TB, c redis.UniversalClient, cfg store.Config) *store.Store {
	tb.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("t%d:", prefixes.Add(1))
	}
	return store.New(c, cfg)
}

// startStore starts a redis-server and returns a store on it.
func startStore(tb testing.TB, cfg store.Config) (*store.Store, *redistest.Server) {
	tb.Helper()
	srv := redistest.Start(tb)
	return newStore(tb, srv.Client(tb), cfg), srv
}

func ctxT(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// mkFunction registers a function with a fake module.
func mkFunction(tb testing.TB, s *store.Store, name string) store.Function {
	tb.Helper()
	ctx := ctxT(tb)
	wasm := []byte("\x00asm fake module " + name)
	sum := sha256.Sum256(wasm)
	hash := hex.EncodeToString(sum[:])
	if err := s.PutModule(ctx, hash, wasm); err != nil {
		tb.Fatalf("PutModule: %v", err)
	}
	f := store.Function{ID: uuid.NewString(), Name: name, ModuleHash: hash, ModuleSize: int64(len(wasm)),
		Limits: task.Limits{TimeoutMs: 1234}}
	if err := s.CreateFunction(ctx, f); err != nil {
		tb.Fatalf("CreateFunction: %v", err)
	}
	return f
}

func submitN(tb testing.TB, s *store.Store, f store.Function, n int) []string {
	tb.Helper()
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = []byte(fmt.Sprint(i))
	}
	ids, err := s.Submit(ctxT(tb), f, inputs)
	if err != nil {
		tb.Fatalf("Submit: %v", err)
	}
	return ids
}

func claim(tb testing.TB, s *store.Store, n int) []task.Task {
	tb.Helper()
	ts, err := s.Claim(ctxT(tb), "test-owner", n)
	if err != nil {
		tb.Fatalf("Claim: %v", err)
	}
	return ts
}

func mustTask(tb testing.TB, s *store.Store, id string) store.Record {
	tb.Helper()
	r, err := s.Task(ctxT(tb), id)
	if err != nil {
		tb.Fatalf("Task(%s): %v", id, err)
	}
	return r
}

func ok(id string, attempt int, out string) task.Outcome {
	return task.Outcome{Ref: task.Ref{ID: id, Attempt: attempt}, Stdout: []byte(out),
		Duration: 7 * time.Millisecond, Worker: "w1", CPUUnits: 242_807}
}

func refs(ts []task.Task) []task.Ref {
	out := make([]task.Ref, len(ts))
	for i, t := range ts {
		out[i] = t.Ref()
	}
	return out
}
