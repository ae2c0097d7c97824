package worker

import (
	"testing"
	"time"

	"faas/protocol"
	"faas/samples"
	"faas/sandbox"
	"faas/task"
)

// TestWorkerSurvivesGarbage: malformed and wrong-version messages from the dispatcher are
// dropped; the worker then registers and asks for work as usual.
func TestWorkerSurvivesGarbage(t *testing.T) {
	d, endpoint := newFakeDispatcher(t)
	stop, wait := startWorker(t, protocol.ModePull, 3, endpoint)

	env, m := d.expect(protocol.TypeRegistration)
	if r := m.(protocol.Registration); r.Worker != "w" || r.Capacity != 3 || r.Mode != "pull" {
		t.Fatalf("registration = %+v", r)
	}
	for _, body := range [][][]byte{
		{},
		{{1}},
		{{protocol.Version + 1}, {byte(protocol.TypeAck)}, []byte("s"), {0, 0, 0, 1}, {0, 0, 0, 1}},
		{{protocol.Version}, {200}},
		{{protocol.Version}, {byte(protocol.TypeNewTask)}, []byte("only an id")},
		{{protocol.Version}, {byte(protocol.TypeModule)}, []byte("hash")},
	} {
		d.sendRaw(env, body)
	}
	d.sendRaw(env, protocol.Encode(protocol.Ack{Session: "s1", HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: time.Second}))
	_, m = d.expect(protocol.TypeRequestTask)
	if r := m.(protocol.RequestTask); r.Want != 3 || r.Worker != "w" {
		t.Fatalf("request = %+v, want 3 tasks for w", r)
	}
	stop()
	wait(10 * time.Second)
}

// TestPushWorkerKeepsCapacity: a push worker sent more tasks than its slots runs what fits
// and hands the rest back with RELEASE; it asks for an unknown module once and reports a
// module the dispatcher cannot provide as an internal failure.
func TestPushWorkerKeepsCapacity(t *testing.T) {
	d, endpoint := newFakeDispatcher(t)
	startWorker(t, protocol.ModePush, 1, endpoint) // stopped by the test's cleanup

	env, _ := d.expect(protocol.TypeRegistration)
	d.sendRaw(env, protocol.Encode(protocol.Ack{Session: "s", HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: time.Second}))
	lim := task.DefaultLimits()
	d.sendRaw(env, protocol.Encode(protocol.NewTask{Tasks: []task.Task{
		{ID: "t1", Attempt: 1, Name: "f", ModuleHash: "h", Limits: lim},
		{ID: "t2", Attempt: 1, Name: "f", ModuleHash: "h", Limits: lim},
	}}))
	var released, asked bool
	for !(released && asked) {
		env, m := d.recv()
		switch m := m.(type) {
		case protocol.Release:
			if len(m.Refs) != 1 || m.Refs[0].ID != "t2" {
				t.Fatalf("released %+v, want t2", m.Refs)
			}
			released = true
		case protocol.ModuleRequest:
			if asked {
				t.Fatal("module asked twice")
			}
			asked = true
			d.sendRaw(env, protocol.Encode(protocol.Module{Hash: "h", Err: "not found"}))
		case protocol.ResultReady:
			t.Fatalf("result before the module answer: %+v", m)
		}
	}
	_, m := d.expect(protocol.TypeResultReady)
	outs := m.(protocol.ResultReady).Outcomes
	if len(outs) != 1 || outs[0].ID != "t1" || outs[0].Failure == nil || outs[0].Failure.Kind != task.KindInternal {
		t.Fatalf("outcomes %+v, want t1 failed internal", outs)
	}
}

// TestModuleFetchedOnceAndRetriedLater: two tasks of one module make one MODULE_REQUEST (the
// executors share the fetch); a "retry later" refusal fails nothing: the worker asks again
// after the window and both tasks complete.
func TestModuleFetchedOnceAndRetriedLater(t *testing.T) {
	moduleRetryAfter = 300 * time.Millisecond
	t.Cleanup(func() { moduleRetryAfter = protocol.ModuleWindow })
	d, endpoint := newFakeDispatcher(t)
	startWorker(t, protocol.ModePush, 2, endpoint)

	env, _ := d.expect(protocol.TypeRegistration)
	d.sendRaw(env, protocol.Encode(protocol.Ack{Session: "s", HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 5 * time.Second}))
	hash := sandbox.Hash(samples.DoubleC)
	lim := task.DefaultLimits()
	d.sendRaw(env, protocol.Encode(protocol.NewTask{Tasks: []task.Task{
		{ID: "t1", Attempt: 1, Name: "double", ModuleHash: hash, Limits: lim, Input: []byte("1")},
		{ID: "t2", Attempt: 1, Name: "double", ModuleHash: hash, Limits: lim, Input: []byte("2")},
	}}))
	asks, results := 0, map[string]string{}
	var refusedAt time.Time
	for len(results) < 2 {
		env, m := d.recv()
		switch m := m.(type) {
		case protocol.ModuleRequest:
			asks++
			switch asks {
			case 1:
				refusedAt = time.Now()
				d.sendRaw(env, protocol.Encode(protocol.Module{Hash: hash, Err: protocol.ModuleRetryLater + "sent within 10s"}))
			case 2:
				if since := time.Since(refusedAt); since < 250*time.Millisecond {
					t.Fatalf("asked again %v after a retry-later refusal, want after the window", since)
				}
				d.sendRaw(env, protocol.Encode(protocol.Module{Hash: hash, Wasm: samples.DoubleC}))
			default:
				t.Fatalf("module asked %d times, want 2 (one fetch for both tasks, one retry)", asks)
			}
		case protocol.ResultReady:
			for _, o := range m.Outcomes {
				if o.Failure != nil {
					t.Fatalf("task %s failed: %+v", o.ID, o.Failure)
				}
				results[o.ID] = string(o.Stdout)
			}
		}
	}
	if results["t1"] != "2" || results["t2"] != "4" || asks != 2 {
		t.Fatalf("results %v after %d asks, want t1=2 t2=4 after 2", results, asks)
	}
}

// TestWorkerEchoesHeartbeatToken: the worker's heartbeat carries the token of the last
// dispatcher heartbeat it read (the dispatcher's proof that queued modules were read).
func TestWorkerEchoesHeartbeatToken(t *testing.T) {
	d, endpoint := newFakeDispatcher(t)
	startWorker(t, protocol.ModePush, 1, endpoint)
	env, _ := d.expect(protocol.TypeRegistration)
	d.sendRaw(env, protocol.Encode(protocol.Ack{Session: "s", HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 5 * time.Second}))
	d.sendRaw(env, protocol.Encode(protocol.Heartbeat{Sender: "s", Token: "00112233445566ff"}))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, m := d.expect(protocol.TypeHeartbeat)
		if hb := m.(protocol.Heartbeat); hb.Token == "00112233445566ff" {
			if hb.Sender != "w" {
				t.Fatalf("heartbeat sender %q, want w", hb.Sender)
			}
			return
		}
	}
	t.Fatal("the worker never echoed the dispatcher's token")
}
