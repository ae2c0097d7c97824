package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/store"
	"faas/task"

	"github.com/redis/go-redis/v9"
)

// TestWaitReplicas: with WaitReplicas, what Submit and Complete acknowledge is on the
// replica when they return; with the replica silent, they wait WaitTimeout, succeed (the
// write is done) and report it to NotReplicated.
func TestWaitReplicas(t *testing.T) {
	primary := redistest.Start(t)
	_, pport, _ := strings.Cut(primary.Addr, ":")
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", pport)
	rc := replica.Client(t)
	inSync := func() bool {
		info, err := rc.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}
	testutil.WaitFor(t, 15*time.Second, "the replica in sync", inSync)

	var mu sync.Mutex
	var reported []string
	cfg := store.Config{Prefix: "w:", WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond,
		NotReplicated: func(op string, err error) {
			if !errors.Is(err, store.ErrNotReplicated) {
				t.Errorf("reported %v, not ErrNotReplicated", err)
			}
			mu.Lock()
			reported = append(reported, op)
			mu.Unlock()
		}}
	st := store.New(primary.Client(t), cfg)
	onReplica := store.New(rc, cfg) // reads only
	reports := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(reported, " ")
	}
	ctx := ctxT(t)
	f := mkFunction(t, st, "waited")

	// Replicated before the call returns, every time.
	for i := 0; i < 20; i++ {
		ids, err := st.Submit(ctx, f, [][]byte{[]byte("a"), []byte("b")})
		if err != nil {
			t.Fatalf("Submit: %v", err)
		}
		for _, id := range ids {
			if r, err := onReplica.Task(ctx, id); err != nil || r.Status != task.Queued {
				t.Fatalf("submit %d: task %s on the replica: %v %+v", i, id, err, r)
			}
		}
	}
	ts, err := st.Claim(ctx, "owner", 1)
	if err != nil || len(ts) != 1 {
		t.Fatalf("Claim: %v %d", err, len(ts))
	}
	done := task.Outcome{Ref: ts[0].Ref(), Stdout: []byte("ok")}
	if n, err := st.Complete(ctx, []task.Outcome{done}); n != 1 || err != nil {
		t.Fatalf("Complete: %d %v", n, err)
	}
	if r, err := onReplica.Task(ctx, ts[0].ID); err != nil || r.Status != task.Completed {
		t.Fatalf("completed task on the replica: %v %+v", err, r)
	}

	if r := reports(); r != "" {
		t.Fatalf("reported %q with the replica in sync", r)
	}

	// The replica stops acknowledging: each write waits its timeout, stands, and is reported.
	ts, err = st.Claim(ctx, "owner", 1)
	if err != nil || len(ts) != 1 {
		t.Fatalf("Claim: %v %d", err, len(ts))
	}
	replica.Pause()
	start := time.Now()
	ids, err := st.Submit(ctx, f, [][]byte{[]byte("c")})
	if err != nil || len(ids) != 1 {
		t.Fatalf("Submit without the replica: %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("Submit returned after %v, before its wait timeout", d)
	}
	if r, err := st.Task(ctx, ids[0]); err != nil || r.Status != task.Queued {
		t.Fatalf("the submitted task on the primary: %v %+v", err, r)
	}
	done = task.Outcome{Ref: ts[0].Ref(), Stdout: []byte("ok")}
	if n, err := st.Complete(ctx, []task.Outcome{done}); n != 1 || err != nil {
		t.Fatalf("Complete without the replica: %d %v", n, err)
	}
	if r := reports(); r != "submit complete" {
		t.Fatalf("reported %q, want \"submit complete\"", r)
	}
	replica.Resume()
	testutil.WaitFor(t, 15*time.Second, "the replica back", inSync)
	if r, err := onReplica.Task(ctx, ts[0].ID); err != nil || r.Status != task.Completed {
		t.Fatalf("the outcome on the replica once back: %v %+v", err, r)
	}
}

// TestWaitReplicasCluster: on a Redis Cluster the script and WAIT go to the master of the
// task's slot. Two masters, only the one holding the tasks' slot with a replica: a WAIT sent
// anywhere else would find no replica and be reported.
func TestWaitReplicasCluster(t *testing.T) {
	ctx := ctxT(t)
	nodes := redistest.StartCluster(t, 2)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr, nodes[1].Addr}})
	t.Cleanup(func() { _ = cc.Close() })
	var reported []string
	var mu sync.Mutex
	st := newStore(t, cc, store.Config{Shards: 1, WaitReplicas: 1, WaitTimeout: 500 * time.Millisecond,
		NotReplicated: func(op string, err error) { mu.Lock(); reported = append(reported, op); mu.Unlock() }})
	f := mkFunction(t, st, "waited")
	// Which master holds the tasks' slot (one shard: one hash tag).
	probe := submitN(t, st, f, 1)[0]
	var holder *redistest.Server
	for _, n := range nodes {
		if keys, _ := n.Client(t).Keys(ctx, "*"+probe+"*").Result(); len(keys) > 0 {
			holder = n
		}
	}
	if holder == nil {
		t.Fatal("no master holds the probe task")
	}
	mu.Lock()
	reported = nil // the probe had no replica to wait for
	mu.Unlock()
	rep := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
	rc := rep.Client(t)
	_, hport, _ := strings.Cut(holder.Addr, ":")
	if err := rc.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", hport).Err(); err != nil {
		t.Fatal(err)
	}
	holderID, err := holder.Client(t).Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the replica to know the master", func() bool {
		ns, err := rc.ClusterNodes(ctx).Result()
		return err == nil && strings.Contains(ns, holderID)
	})
	if err := rc.Do(ctx, "CLUSTER", "REPLICATE", holderID).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the replica in sync", func() bool {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	for i := 0; i < 10; i++ {
		ids, err := st.Submit(ctx, f, [][]byte{[]byte("a"), []byte("b")})
		if err != nil {
			t.Fatalf("Submit: %v", err)
		}
		for _, id := range ids {
			// KEYS runs on the node itself, replica or not: no MOVED.
			if keys, err := rc.Keys(ctx, "*"+id+"*").Result(); err != nil || len(keys) == 0 {
				t.Fatalf("submit %d: task %s not on the replica when Submit returned: %v %v", i, id, keys, err)
			}
		}
	}
	ts, err := st.Claim(ctx, "owner", 4)
	if err != nil || len(ts) != 4 {
		t.Fatalf("Claim: %v %d", err, len(ts))
	}
	outs := make([]task.Outcome, len(ts))
	for i, tk := range ts {
		outs[i] = task.Outcome{Ref: tk.Ref(), Stdout: []byte("ok")}
	}
	if n, err := st.Complete(ctx, outs); n != 4 || err != nil {
		t.Fatalf("Complete: %d %v", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 0 {
		t.Fatalf("reported %v: a WAIT went to a master without the replica", reported)
	}
}
