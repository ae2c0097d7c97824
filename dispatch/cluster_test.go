package dispatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/protocol"
	"faas/samples"
	"faas/store"
	"faas/task"
)

// TestShardedCluster: on a 3-master Redis Cluster, 5,000 tasks submitted in batches spread
// over the default 16 task shards; a local dispatcher runs them all to COMPLETED, and every
// master holds task records (counted per node with SCAN), so that the cluster shares the
// load instead of one node holding every key.
func TestShardedCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr
	}
	c, err := store.Open("redis+cluster://" + strings.Join(addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st := store.New(c, store.Config{})
	if st.Config().Shards != store.DefaultClusterShards {
		t.Fatalf("shards = %d; want the cluster default %d", st.Config().Shards, store.DefaultClusterShards)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := st.CheckShards(ctx); err != nil {
		t.Fatalf("CheckShards at first start: %v", err)
	}
	if err := store.New(c, store.Config{Shards: 4}).CheckShards(ctx); err == nil || !strings.Contains(err.Error(), "--shards 16") {
		t.Fatalf("CheckShards with another count = %v; want a refusal naming --shards 16", err)
	}
	sb := testSandbox(t)
	t.Cleanup(func() { sb.Close(context.Background()) })
	f := &fixture{st: st, sb: sb, mode: protocol.ModeLocal,
		cfg: Config{Mode: protocol.ModeLocal, Workers: 4, HeartbeatInterval: fastBeat, HeartbeatTimeout: fastTimeout,
			DrainTimeout: 3 * time.Second}}
	fn := f.register(t, "double", samples.DoubleWAT)

	const total, batch = 5_000, 250
	var ids []string
	for i := 0; i < total; i += batch {
		inputs := make([][]byte, batch)
		for j := range inputs {
			inputs[j] = []byte(fmt.Sprint(i + j))
		}
		ids = append(ids, f.submit(t, fn, inputs)...)
	}
	f.startDispatcher(t)
	testutil.WaitForProgress(t, 25*time.Second, "every task COMPLETED", func() (bool, string) {
		n, err := st.QueueLen(ctx)
		l, err2 := st.LeaseCount(ctx)
		return err == nil && err2 == nil && n == 0 && l == 0, fmt.Sprintf("%d queued, %d leased", n, l)
	})
	recs := f.records(t, ids)
	for i, r := range recs {
		if r.Status != task.Completed || string(r.Result) != fmt.Sprint(2*i) {
			t.Fatalf("task %d (%s): %s %q %+v; want COMPLETED %d", i, r.ID, r.Status, r.Result, r.Error, 2*i)
		}
	}
	for _, n := range nodes {
		keys, err := n.Client(t).Keys(ctx, "*task:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("node %s holds %d task records", n.Addr, len(keys))
		// 16 shards over 3 masters of equal slot runs: 5, 6 and 5 shards (keys.go spaces
		// the shard tags' slots evenly), so no node holds more than 6/16 of the tasks.
		if len(keys) == 0 || len(keys) > total*6/16+total/100 {
			t.Fatalf("node %s holds %d of %d task records: the shards did not spread evenly", n.Addr, len(keys), total)
		}
	}
}
