package redistest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"faas/internal/redistest"
)

func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("restart keeps appendonly data", func(t *testing.T) {
		srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
		c := srv.Client(t)
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		addr := srv.Addr
		srv.Restart(t)
		if srv.Addr != addr {
			t.Fatalf("address changed: %s → %s", addr, srv.Addr)
		}
		if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("after restart GET = %q, %v", v, err)
		}
	})
	t.Run("default keeps nothing", func(t *testing.T) {
		srv := redistest.Start(t)
		c := srv.Client(t)
		c.Set(ctx, "k", "v", 0)
		srv.Kill()
		if srv.Running() {
			t.Fatal("still running after Kill")
		}
		srv.Restart(t)
		if n := c.Exists(ctx, "k").Val(); n != 0 {
			t.Fatal("data survived a restart without persistence")
		}
	})
	t.Run("pause and resume", func(t *testing.T) {
		srv := redistest.Start(t)
		c := srv.Client(t)
		srv.Pause()
		pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := c.Ping(pctx).Err()
		pcancel()
		if err == nil {
			t.Fatal("a paused server answered")
		}
		srv.Resume()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("after resume: %v", err)
		}
	})
	t.Run("stop twice and flush", func(t *testing.T) {
		srv := redistest.Start(t)
		srv.Client(t).Set(ctx, "k", "v", 0)
		srv.Flush(t)
		if n := srv.Client(t).DBSize(ctx).Val(); n != 0 {
			t.Fatalf("DBSIZE = %d after Flush", n)
		}
		srv.Stop()
		srv.Stop()
	})
}

// TestCount: every word published on the channel is counted, and Once sorts the words into
// missing, announced twice and unknown.
func TestCount(t *testing.T) {
	s := redistest.Start(t)
	a := s.Count(t, "done")
	rdb := s.Client(t)
	ctx := context.Background()
	for _, m := range []string{"a b", "b", "x"} {
		if err := rdb.Publish(ctx, "done", m).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Publish(ctx, "other", "c").Err(); err != nil {
		t.Fatal(err)
	}
	missing, twice, unknown := a.Once([]string{"a", "b", "c"}, 200*time.Millisecond)
	if !slices.Equal(missing, []string{"c"}) || !slices.Equal(twice, []string{"b×2"}) || !slices.Equal(unknown, []string{"x"}) {
		t.Errorf("missing %v, twice %v, unknown %v; want [c], [b×2], [x]", missing, twice, unknown)
	}
}
