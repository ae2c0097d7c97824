package redistest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/internal/testutil"
)

// StartCluster runs n redis-server masters (cluster mode) on loopback, splits the 16,384
// slots between them in even ranges, introduces them to each other (CLUSTER MEET) and
// waits until every node reports cluster_state:ok and knows all n masters. The nodes stop
// at cleanup. No replicas: a test of spreading, not of failover.
func StartCluster(tb testing.TB, n int) []*Server {
	tb.Helper()
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = Start(tb, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, s := range nodes {
		c := s.Client(tb)
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			tb.Fatalf("redistest: CLUSTER ADDSLOTSRANGE %d %d on %s: %v", lo, hi, s.Addr, err)
		}
		if i > 0 {
			if err := c.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(nodes[0].port)).Err(); err != nil {
				tb.Fatalf("redistest: CLUSTER MEET from %s: %v", s.Addr, err)
			}
		}
	}
	clients := make([]*redis.Client, n)
	for i, s := range nodes {
		clients[i] = s.Client(tb)
	}
	testutil.WaitFor(tb, 20*time.Second, "the cluster to form", func() bool {
		for _, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			ns, err := c.ClusterNodes(ctx).Result()
			if err != nil || strings.Count(ns, "master") < n {
				return false
			}
		}
		return true
	})
	return nodes
}
