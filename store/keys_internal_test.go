package store

import (
	"context"
	"testing"

	"faas/internal/redistest"
)

// TestShardSlots: slotOf agrees with Redis's CLUSTER KEYSLOT, and the shard tags of 16
// shards land one in each sixteenth of the slot range, so that masters holding equal runs
// of slots get equal numbers of shards.
func TestShardSlots(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	c := srv.Client(t)
	ctx := context.Background()
	k := newKeys("{faas}:", 16)
	for i, p := range k.shards {
		want, err := c.ClusterKeySlot(ctx, p+"queue").Result()
		if err != nil {
			t.Fatal(err)
		}
		tag := p[1 : len(p)-2]
		if got := slotOf(tag); int64(got) != want {
			t.Fatalf("slotOf(%q) = %d; CLUSTER KEYSLOT says %d", tag, got, want)
		}
		if lo, hi := i*clusterSlots/16, (i+1)*clusterSlots/16; int(want) < lo || int(want) >= hi {
			t.Fatalf("shard %d (%s) in slot %d; want [%d, %d)", i, p, want, lo, hi)
		}
	}
	if one := newKeys("faas:", 1); one.shards[0] != "faas:" || one.shard(0).queue() != "faas:queue" {
		t.Fatalf("one shard: keys %v; want the unsharded names", one.shards)
	}
	id := "0b6e1f0e-4a3c-4d55-9c2e-1f2a3b4c5d07"
	if sh := k.shardOf(id); sh != 7 || k.task(id) != k.shards[7]+"task:"+id {
		t.Fatalf("shardOf(%s) = %d, task key %s; want shard 7", id, sh, k.task(id))
	}
}
