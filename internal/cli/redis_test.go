package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"faas/internal/redistest"
	"faas/internal/testutil"
)

// TestRedisFlags: a bad --prefix or Redis URL of any form is a usage error that names the
// problem and never shows the password, on every command that reaches Redis.
func TestRedisFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"server prefix colon", []string{"server", "--prefix", "a:b"}, "--prefix"},
		{"dispatcher empty prefix", []string{"dispatcher", "-m", "local", "--prefix", ""}, "--prefix"},
		{"dev prefix brace", []string{"dev", "--prefix", "{x}"}, "--prefix"},
		{"sentinel without master", []string{"server", "--redis", "redis+sentinel://u:s3cret-pw@127.0.0.1:26379"}, "MASTER"},
		{"sentinel bad host", []string{"dispatcher", "-m", "local", "--redis", "redis+sentinel://u:s3cret-pw@127.0.0.1:1,nohost/m/0"}, "host:port"},
		{"cluster with a db", []string{"server", "--redis", "redis+cluster://u:s3cret-pw@127.0.0.1:7000/2"}, "database 0 only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, errs, code := runCLI(t, ctx, "", append(tc.args, "--cache-dir", "")...)
			if code != ExitUsage || !strings.Contains(errs, tc.want) || strings.Contains(errs, "s3cret-pw") {
				t.Fatalf("exit %d, stderr %q; want a usage error about %q without the password", code, errs, tc.want)
			}
		})
	}
}

// TestClusterNodeSaidAtStart: a single-node --redis on a Redis Cluster node stops the
// server at start, naming redis+cluster://, instead of answering MOVED to each request.
func TestClusterNodeSaidAtStart(t *testing.T) {
	rs := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	admin := rs.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "cluster_state:ok", func() bool {
		return strings.Contains(admin.ClusterInfo(ctx).Val(), "cluster_state:ok")
	})
	for _, cmd := range [][]string{{"server", "--addr", "127.0.0.1:0"}, {"dispatcher", "-m", "local"}} {
		_, errs, code := runCLI(t, ctx, "", append(cmd, "--redis", rs.URL, "--cache-dir", "")...)
		if code != ExitUsage || !strings.Contains(errs, "cluster node") || !strings.Contains(errs, "redis+cluster://") {
			t.Fatalf("%s on a cluster node: exit %d, stderr %q", cmd[0], code, errs)
		}
	}
}
