package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/store"
)

// TestCoreFlowCluster runs the flow on a one-node Redis Cluster: Redis refuses a script or
// a MULTI whose declared keys span slots (CROSSSLOT), which the hash-tagged prefix avoids.
func TestCoreFlowCluster(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	ctx := ctxT(t)
	admin := srv.Client(t)
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "cluster_state:ok", func() bool {
		return strings.Contains(admin.ClusterInfo(ctx).Val(), "cluster_state:ok")
	})
	c, err := store.Open(srv.Addr + "," + srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, ok := c.(*redis.ClusterClient); !ok {
		t.Fatalf("Open of an address list made a %T", c)
	}
	if s := store.New(c, store.Config{}); s.Config().Shards != store.DefaultClusterShards {
		t.Fatalf("cluster shards = %d; want %d", s.Config().Shards, store.DefaultClusterShards)
	}
	// One shard: coreFlow checks FIFO order, which holds within a shard only.
	s := store.New(c, store.Config{Shards: 1})
	if p := s.Config().Prefix; p != "{faas}:" {
		t.Fatalf("cluster prefix = %q; want {faas}:", p)
	}
	coreFlow(t, s)
	if fs, err := s.Functions(ctx); err != nil || len(fs) != 1 {
		t.Fatalf("Functions = %v, %v", fs, err)
	}
	// Namespaces: their keys (queues, ring, usage) share the store's slot.
	fb := inNS(t, s, mkFunction(t, s, "g"), "B")
	ids := submitNS(t, s, fb, 2)
	if n, err := s.QueueLen(ctx); err != nil || n != 2 {
		t.Fatalf("QueueLen = %d, %v", n, err)
	}
	if ts, err := s.Claim(ctx, "d", 5); err != nil || len(ts) != 2 || ts[0].ID != ids[0] {
		t.Fatalf("Claim in namespace B = %v, %v", ts, err)
	}
	if _, err := s.DeleteFunction(ctx, "B", fb.ID); err != nil {
		t.Fatalf("DeleteFunction: %v", err)
	}
}
