package worker

import (
	"testing"
	"time"

	"faas/protocol"
	"faas/task"
)

// next returns the next message that is not a heartbeat.
func (d *fakeDispatcher) next() ([][]byte, protocol.Message) {
	d.t.Helper()
	for {
		env, m := d.recv()
		if m.Type() != protocol.TypeHeartbeat {
			return env, m
		}
	}
}

// TestStopHandsBackLateTasks: a stopping worker says BYE, then waits for the dispatcher's
// answer; a task the dispatcher sent before reading that BYE (push: on the control socket;
// pull: as the reply to the held request) is handed back with RELEASE, and only then does
// the worker say its final BYE and return.
func TestStopHandsBackLateTasks(t *testing.T) {
	for _, mode := range []protocol.Mode{protocol.ModePush, protocol.ModePull} {
		t.Run(string(mode), func(t *testing.T) {
			d, endpoint := newFakeDispatcher(t)
			cancel, wait := startWorker(t, mode, 2, endpoint)

			ctrl, _ := d.expect(protocol.TypeRegistration)
			d.sendRaw(ctrl, protocol.Encode(protocol.Ack{Session: "s", HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: time.Second}))
			// Stop once registered (a heartbeat, or the request for work, says so): a worker
			// that is not does not wait for an answer.
			late := ctrl // where the late task goes: push on the control socket, pull as the REQ reply
			if mode == protocol.ModePull {
				late, _ = d.expect(protocol.TypeRequestTask)
			} else {
				d.expect(protocol.TypeHeartbeat)
			}
			cancel()
			if _, m := d.next(); m.Type() != protocol.TypeBye {
				t.Fatalf("first message after stop = %+v, want BYE", m)
			}
			d.sendRaw(late, protocol.Encode(protocol.NewTask{Tasks: []task.Task{
				{ID: "t1", Attempt: 1, Name: "f", ModuleHash: "h", Limits: task.DefaultLimits()},
			}}))
			_, m := d.next()
			if r, ok := m.(protocol.Release); !ok || len(r.Refs) != 1 || r.Refs[0].ID != "t1" {
				t.Fatalf("message after the late task = %+v, want RELEASE t1", m)
			}
			if mode == protocol.ModePush {
				d.sendRaw(ctrl, protocol.Encode(protocol.Bye{Sender: "dispatcher"}))
			}
			if _, m := d.next(); m.Type() != protocol.TypeBye {
				t.Fatalf("last message = %+v, want BYE", m)
			}
			wait(5 * time.Second)
		})
	}
}
