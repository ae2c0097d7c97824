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
	s := store.New(c, store.Config{})
	if p := s.Config().Prefix; p != "{faas}:" {
		t.Fatalf("cluster prefix = %q; want {faas}:", p)
	}
	coreFlow(t, s)
	if fs, err := s.Functions(ctx); err != nil || len(fs) != 1 {
		t.Fatalf("Functions = %v, %v", fs, err)
	}
}
