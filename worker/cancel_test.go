package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"faas/protocol"
	"faas/samples"
	"faas/task"
)

// TestWorkerCancel: a CANCEL for a task the worker does not hold, or for another attempt of
// one it runs, is ignored; a CANCEL of the running attempt stops it at once, and the worker
// reports it in RESULT_READY with kind cancelled (which frees the slot at the dispatcher),
// then asks for work again.
func TestWorkerCancel(t *testing.T) {
	d, endpoint := newFakeDispatcher(t)
	startWorker(t, protocol.ModePush, 1, endpoint)
	env, _ := d.expect(protocol.TypeRegistration)
	d.sendRaw(env, protocol.Encode(protocol.Ack{Session: "s", HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: time.Second}))
	sum := sha256.Sum256(samples.Sleep)
	hash := hex.EncodeToString(sum[:])
	lim := task.Limits{TimeoutMs: 30_000}.WithDefaults()
	d.sendRaw(env, protocol.Encode(protocol.NewTask{Tasks: []task.Task{
		{ID: "t1", Attempt: 2, Name: "sleep", ModuleHash: hash, Limits: lim, Input: []byte("20000")},
	}}))
	d.expect(protocol.TypeModuleRequest)
	d.sendRaw(env, protocol.Encode(protocol.Module{Hash: hash, Wasm: samples.Sleep}))
	// Running: its heartbeat lists it.
	for {
		_, m := d.expect(protocol.TypeHeartbeat)
		if held := m.(protocol.Heartbeat).Held; len(held) == 1 && held[0] == (task.Ref{ID: "t1", Attempt: 2}) {
			break
		}
	}
	time.Sleep(100 * time.Millisecond) // past compilation, in the guest's sleep
	d.sendRaw(env, protocol.Encode(protocol.Cancel{Refs: []task.Ref{{ID: "t1", Attempt: 1}, {ID: "other", Attempt: 1}}}))
	// Still held a few heartbeats later.
	for range 3 {
		_, m := d.expect(protocol.TypeHeartbeat)
		if held := m.(protocol.Heartbeat).Held; len(held) != 1 {
			t.Fatalf("after a CANCEL of what it does not run, the worker holds %v", held)
		}
	}
	start := time.Now()
	d.sendRaw(env, protocol.Encode(protocol.Cancel{Refs: []task.Ref{{ID: "t1", Attempt: 2}}}))
	_, m := d.expect(protocol.TypeResultReady)
	outs := m.(protocol.ResultReady).Outcomes
	if len(outs) != 1 || outs[0].Ref != (task.Ref{ID: "t1", Attempt: 2}) || outs[0].Failure == nil ||
		outs[0].Failure.Kind != task.KindCancelled {
		t.Fatalf("outcomes %+v, want t1 attempt 2 cancelled", outs)
	}
	t.Logf("CANCEL to RESULT_READY: %v", time.Since(start))
	_, m = d.expect(protocol.TypeHeartbeat)
	if held := m.(protocol.Heartbeat).Held; len(held) != 0 {
		t.Fatalf("after its cancel, the worker still holds %v", held)
	}
}
