package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"faas/protocol"
	"faas/samples"
	"faas/task"
)

// TestWorkerQueue: a worker of 1 slot and a queue of 2 registers a capacity of 3, runs one
// task at a time and starts the queued ones in order as the slot frees, hands back what
// is beyond the queue, lists queued tasks as held, answers a CANCEL of a queued task at once
// (it never starts), and hands queued tasks back when it stops.
func TestWorkerQueue(t *testing.T) {
	d, endpoint := newFakeDispatcher(t)
	stop, wait := startWorkerWith(t, Config{Mode: protocol.ModePush, Slots: 1, Queue: 2, Endpoint: endpoint})
	env, m := d.expect(protocol.TypeRegistration)
	if c := m.(protocol.Registration).Capacity; c != 3 {
		t.Fatalf("registered a capacity of %d, want 3 (1 slot, 2 queued)", c)
	}
	d.sendRaw(env, protocol.Encode(protocol.Ack{Session: "s", HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: time.Second}))
	sum := sha256.Sum256(samples.Sleep)
	hash := hex.EncodeToString(sum[:])
	lim := task.Limits{TimeoutMs: 30_000}.WithDefaults()
	sleep := func(id, ms string) task.Task {
		return task.Task{ID: id, Attempt: 1, Name: "sleep", ModuleHash: hash, Limits: lim, Input: []byte(ms)}
	}
	sent := time.Now()
	d.sendRaw(env, protocol.Encode(protocol.NewTask{Tasks: []task.Task{
		sleep("t1", "300"), sleep("t2", "300"), sleep("t3", "300"), sleep("t4", "300")}}))
	_, m = d.expect(protocol.TypeRelease)
	if refs := m.(protocol.Release).Refs; len(refs) != 1 || refs[0].ID != "t4" {
		t.Fatalf("handed back %v, want t4 (beyond the slot and the queue)", refs)
	}
	d.expect(protocol.TypeModuleRequest)
	d.sendRaw(env, protocol.Encode(protocol.Module{Hash: hash, Wasm: samples.Sleep}))
	for {
		_, m := d.expect(protocol.TypeHeartbeat)
		var ids []string
		for _, r := range m.(protocol.Heartbeat).Held {
			ids = append(ids, r.ID)
		}
		slices.Sort(ids)
		if slices.Equal(ids, []string{"t1", "t2", "t3"}) {
			break
		}
	}
	// t3 waits in the queue: cancelled at once, never run.
	d.sendRaw(env, protocol.Encode(protocol.Cancel{Refs: []task.Ref{{ID: "t3", Attempt: 1}}}))
	var order []string
	at := map[string]time.Time{}
	for len(order) < 3 {
		_, m := d.expect(protocol.TypeResultReady)
		for _, o := range m.(protocol.ResultReady).Outcomes {
			at[o.ID] = time.Now()
			switch {
			case o.ID == "t3" && (o.Failure == nil || o.Failure.Kind != task.KindCancelled || o.Duration != 0):
				t.Fatalf("queued t3 after its cancel: %+v", o)
			case o.ID != "t3" && o.Failure != nil:
				t.Fatalf("%s failed: %+v", o.ID, o.Failure)
			}
			order = append(order, o.ID)
		}
	}
	if !slices.Equal(order, []string{"t3", "t1", "t2"}) {
		t.Fatalf("outcomes in the order %v, want t3 (cancelled in the queue), t1, t2", order)
	}
	// One slot: t2 started when t1 ended, so it cannot have ended before two runs of
	// 300 ms (a busy machine only makes it later).
	if took := at["t2"].Sub(sent); took < 590*time.Millisecond {
		t.Fatalf("t2 ended %v after the tasks were sent: t1 and t2 ran at once on one slot", took)
	}
	// Queued at stop: handed back, not run.
	d.sendRaw(env, protocol.Encode(protocol.NewTask{Tasks: []task.Task{sleep("t5", "1000"), sleep("t6", "10")}}))
	for {
		_, m := d.expect(protocol.TypeHeartbeat)
		if len(m.(protocol.Heartbeat).Held) == 2 {
			break
		}
	}
	stop()
	_, m = d.expect(protocol.TypeRelease)
	if refs := m.(protocol.Release).Refs; len(refs) != 1 || refs[0].ID != "t6" {
		t.Fatalf("at stop handed back %v, want the queued t6", refs)
	}
	wait(10 * time.Second)
}
