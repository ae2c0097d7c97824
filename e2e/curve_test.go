package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"faas/internal/testutil"
	"faas/internal/zsock"
	"faas/protocol"
	"faas/samples"
	"faas/store"
	"faas/task"
)

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// keygen runs `faas keygen` and returns the key pair it wrote.
func keygen(t *testing.T, path string) zsock.KeyPair {
	t.Helper()
	if out, err := exec.Command(faasBin, "keygen", path).CombinedOutput(); err != nil {
		t.Fatalf("faas keygen: %v\n%s", err, out)
	}
	k, err := zsock.ReadKeyPair(path + ".key")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCurve runs, in each remote mode, a CURVE dispatcher with a real worker behind a
// byte relay completing a batch, while a rogue, a worker pinned to the wrong dispatcher key
// and an authorized but malicious worker try what they can.
func TestCurve(t *testing.T) {
	for _, mode := range []string{"pull", "push"} {
		t.Run(mode, func(t *testing.T) { t.Parallel(); curveScenario(t, mode) })
	}
}

func curveScenario(t *testing.T, mode string) {
	pm := protocol.Mode(mode)
	p := newPlatform(t)
	dir := t.TempDir()
	dk := keygen(t, filepath.Join(dir, "dispatcher"))
	wk := keygen(t, filepath.Join(dir, "worker"))
	mk, _ := zsock.NewKeyPair() // the malicious worker's: authorized
	authz := filepath.Join(dir, "authorized")
	os.WriteFile(authz, []byte("# real worker\n"+wk.Public+"\n# malicious\n"+mk.Public+"\n"), 0o644)

	const marker = "MARKER-7f3a9c"
	echo := p.addFunction("echo", samples.Echo, task.Limits{StdoutBytes: 1024})
	secretFn := p.addFunction("fib", samples.Fib, task.Limits{}) // never run: its module must not leak

	d, endpoint := p.dispatcher("dispatcher", mode, "--key", filepath.Join(dir, "dispatcher.key"), "--authorized-workers", authz)
	addr := strings.TrimPrefix(endpoint, "tcp://")
	rel, relayed := startRelay(t, addr)
	startProc(t, "worker", "worker", mode, "2", relayed, "--heartbeat", testHeartbeat,
		"--key", filepath.Join(dir, "worker.key"), "--dispatcher-key", filepath.Join(dir, "dispatcher.pub"))

	// A worker pinned to the wrong dispatcher key never registers and says why.
	other, _ := zsock.NewKeyPair()
	wrong := startProc(t, "wrong-key-worker", "worker", mode, "1", endpoint, "--heartbeat", testHeartbeat,
		"--key", filepath.Join(dir, "worker.key"), "--dispatcher-key", other.Public)

	// The batch, whose inputs (and so outputs) carry the marker.
	inputs := make([][]byte, 40)
	for i := range inputs {
		inputs[i] = []byte(fmt.Sprintf("%s-%d", marker, i))
	}
	ids, err := p.st.Submit(t.Context(), echo, inputs)
	if err != nil {
		t.Fatal(err)
	}

	// A rogue with a fresh, unlisted key gets no ACK, no task and no module.
	rk, _ := zsock.NewKeyPair()
	rogue := newTestPeer(t, endpoint, rk, dk.Public, pm == protocol.ModePull)
	rogue.send(protocol.ModuleRequest{Worker: "rogue", Hash: echo.ModuleHash})
	rogue.send(protocol.Registration{Worker: "rogue", Mode: pm, Capacity: 8})
	if m := rogue.recv(time.Second); m != nil {
		t.Fatalf("the unlisted rogue got a %v", m.Type())
	}

	// The malicious worker registers under the real worker's name: a label, not an identity.
	rs := p.waitTerminal(ids, 1, 15*time.Second)
	victimName := ""
	for _, r := range rs {
		if r.Worker != "" {
			victimName = r.Worker
		}
	}
	mal := newTestPeer(t, endpoint, mk, dk.Public, pm == protocol.ModePull)
	if !mal.register(victimName, pm, 2, 3*time.Second) {
		t.Fatal("the authorized malicious worker was not acknowledged")
	}
	// It asks for a module of which it was sent no task.
	mal.send(protocol.ModuleRequest{Worker: victimName, Hash: secretFn.ModuleHash})
	if m, ok := mal.recvType(protocol.TypeModule, 2*time.Second).(protocol.Module); !ok || m.Err == "" || len(m.Wasm) > 0 {
		t.Fatalf("module request for a task not sent to it: %+v", m)
	}

	// A second batch: the malicious worker takes what it is sent, and forges for each
	// a result over stdout_bytes or an unknown failure kind.
	more, err := p.st.Submit(t.Context(), echo, inputs[:20])
	if err != nil {
		t.Fatal(err)
	}
	got := mal.tasks(2, 5*time.Second)
	forged := make([]task.Outcome, len(got))
	for i, tk := range got {
		forged[i] = task.Outcome{Ref: tk.Ref(), Stdout: bytes.Repeat([]byte("x"), 2048)}
		if i%2 == 1 {
			forged[i] = task.Outcome{Ref: tk.Ref(), Failure: &task.Failure{Kind: "pwned", Message: "owned"}}
		}
	}
	// And results, releases and heartbeats for the tasks of the real worker.
	all := append(append([]string{}, ids...), more...)
	recs, _ := p.records(all)
	var theirs []task.Ref
	for _, r := range recs {
		if r.Status == task.Running && r.Attempts > 0 {
			theirs = append(theirs, task.Ref{ID: r.ID, Attempt: r.Attempts})
		}
	}
	for _, r := range theirs {
		forged = append(forged, task.Outcome{Ref: r, Stdout: []byte("forged")})
	}
	mal.send(protocol.ResultReady{Worker: victimName, Outcomes: forged})
	mal.send(protocol.Release{Worker: victimName, Refs: theirs})

	all = append(all, p.submitEcho(echo, inputs[:20])...)
	final := p.waitAll(all, 30*time.Second)
	taken := map[string]bool{}
	for _, tk := range got {
		taken[tk.ID] = true
	}
	for _, r := range final {
		if r.Status != task.Completed || !strings.HasPrefix(string(r.Result), marker) {
			t.Errorf("task %s: %s %q (error %+v, attempts %d)", r.ID, r.Status, r.Result, r.Error, r.Attempts)
		}
		if taken[r.ID] && r.Attempts < 2 {
			t.Errorf("task %s forged by the malicious worker was not re-run: attempts %d", r.ID, r.Attempts)
		}
	}
	t.Logf("malicious worker was sent %d tasks, forged %d outcomes and released %d of the real worker's", len(got), len(forged), len(theirs))

	// The relay between the real worker and the dispatcher saw neither the marker nor the module.
	seen := rel.bytes()
	if len(seen) < 1000 {
		t.Fatalf("the relay carried only %d bytes: the worker did not use it", len(seen))
	}
	if bytes.Contains(seen, []byte(marker)) {
		t.Error("the relay saw the marker of inputs/outputs in clear")
	}
	if mid := samples.Echo[len(samples.Echo)/2:][:64]; bytes.Contains(seen, mid) {
		t.Error("the relay saw the module's bytes in clear")
	}

	// The wrong-key worker gave up, saying why.
	select {
	case <-wrong.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker pinned to the wrong dispatcher key is still waiting")
	}
	if out := wrong.out.String(); wrong.err == nil || !strings.Contains(out, "dispatcher-key") {
		t.Errorf("wrong-key worker: exit %v, output lacks the reason:\n%s", wrong.err, tail(out, 5))
	}

	// A 256 MiB frame from an authorized peer is refused before it is allocated.
	before := vmHWM(t, d.pid())
	zsock.Send(mal.dealer, 0, nil, [][]byte{make([]byte, 256<<20)})
	time.Sleep(time.Second)
	if after := vmHWM(t, d.pid()); after-before > 64<<10 {
		t.Errorf("a 256 MiB frame raised the dispatcher's peak memory from %d to %d KiB", before, after)
	} else {
		t.Logf("dispatcher peak memory %d KiB → %d KiB across a 256 MiB frame", before, after)
	}

	// SIGHUP after removing the malicious key: it is told, and dropped.
	mal2 := newTestPeer(t, endpoint, mk, dk.Public, pm == protocol.ModePull)
	if !mal2.register("again", pm, 1, 3*time.Second) {
		t.Fatal("the malicious key could not register again")
	}
	os.WriteFile(authz, []byte(wk.Public+"\n"), 0o644)
	d.signal(t, syscall.SIGHUP)
	if m, ok := mal2.recvType(protocol.TypeError, 3*time.Second).(protocol.Error); !ok || m.Code != protocol.CodeUnauthorized {
		t.Fatalf("after SIGHUP the removed key heard %+v, want ERROR unauthorized", m)
	}
	mal2.send(protocol.Heartbeat{Sender: "again"})
	if m := mal2.recv(time.Second); m != nil {
		t.Fatalf("the removed key still gets answers: %v", m.Type())
	}
	// The real worker keeps working.
	last := p.submitEcho(echo, inputs[:5])
	for _, r := range p.waitAll(last, 15*time.Second) {
		if r.Status != task.Completed {
			t.Errorf("after SIGHUP: task %s %s", r.ID, r.Status)
		}
	}
	if !strings.Contains(d.out.String(), "dropping messages of a worker") {
		t.Error("the dispatcher logged no dropped message")
	}
}

func (p *platform) submitEcho(fn store.Function, inputs [][]byte) []string {
	p.tb.Helper()
	ids, err := p.st.Submit(context.Background(), fn, inputs)
	if err != nil {
		p.tb.Fatal(err)
	}
	return ids
}

// vmHWM is a process's peak resident memory, in KiB.
func vmHWM(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestBindNeedsKeys: a dispatcher without keys refuses to listen beyond loopback.
func TestBindNeedsKeys(t *testing.T) {
	p := newPlatform(t)
	d := p.dispatcherAt("dispatcher", "push", fmt.Sprintf("tcp://0.0.0.0:%d", testutil.FreePort(t)), "--bind", "0.0.0.0")
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("a dispatcher on 0.0.0.0 without keys is running")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(d.out.String(), "--key") {
		t.Fatalf("exit %d, output:\n%s", code, d.out.String())
	}
}

// TestLoopbackOwnership: without CURVE (loopback), a message still touches only the tasks
// sent on its own connection: a peer that registers under the real worker's name cannot
// complete or release the real worker's tasks, and the real worker keeps getting work.
func TestLoopbackOwnership(t *testing.T) {
	for _, mode := range []string{"pull", "push"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			pm := protocol.Mode(mode)
			p := newPlatform(t)
			_, endpoint := p.dispatcher("dispatcher", mode)
			p.worker("worker", mode, 2, endpoint)
			first := p.waitAll(p.submit(2, 1), 15*time.Second)
			victim := first[0].Worker
			ids := p.submit(6, 1500) // long enough to be RUNNING at the real worker below
			mal := newTestPeer(t, endpoint, zsock.KeyPair{}, "", pm == protocol.ModePull)
			if !mal.register(victim, pm, 1, 3*time.Second) {
				t.Fatal("the peer was not acknowledged")
			}
			// What the peer itself is sent (it registered under the real worker's name, so the
			// records name the real worker for those too) it may answer, but a forged kind is
			// refused and the task re-run. It answers only after the forgeries below, so that
			// its one slot stays taken and no other task is sent to it meanwhile.
			own := map[string]bool{}
			ownTasks := mal.tasks(1, time.Second)
			for _, tk := range ownTasks {
				own[tk.ID] = true
			}
			var theirs []task.Ref
			testutil.WaitFor(t, 10*time.Second, "a task running at the real worker", func() bool {
				rs, _ := p.records(ids)
				theirs = theirs[:0]
				for _, r := range rs {
					if r.Status == task.Running && r.Worker == victim && !own[r.ID] {
						theirs = append(theirs, task.Ref{ID: r.ID, Attempt: r.Attempts})
					}
				}
				return len(theirs) > 0
			})
			var forged []task.Outcome
			for _, r := range theirs {
				forged = append(forged, task.Outcome{Ref: r, Stdout: []byte("forged")})
			}
			mal.send(protocol.ResultReady{Worker: victim, Outcomes: forged})
			mal.send(protocol.Release{Worker: victim, Refs: theirs})
			for _, tk := range ownTasks {
				mal.send(protocol.ResultReady{Worker: victim, Outcomes: []task.Outcome{{Ref: tk.Ref(), Failure: &task.Failure{Kind: "pwned"}}}})
			}
			for _, r := range p.waitAll(ids, 30*time.Second) {
				if r.Status != task.Completed || !strings.HasPrefix(string(r.Result), "slept ") {
					t.Errorf("task %s: %s %q %+v", r.ID, r.Status, r.Result, r.Error)
				}
			}
		})
	}
}

// TestCurveMismatch: a worker with a key against a dispatcher without CURVE, and a worker
// without a key against a dispatcher with it, each stop within seconds saying why.
func TestCurveMismatch(t *testing.T) {
	p := newPlatform(t)
	dir := t.TempDir()
	keygen(t, filepath.Join(dir, "dispatcher"))
	wk := keygen(t, filepath.Join(dir, "worker"))
	authz := filepath.Join(dir, "authorized")
	os.WriteFile(authz, []byte(wk.Public+"\n"), 0o644)
	_, plain := p.dispatcher("plain-dispatcher", "push")
	_, curved := p.dispatcher("curve-dispatcher", "push", "--key", filepath.Join(dir, "dispatcher.key"), "--authorized-workers", authz)
	withKey := startProc(t, "worker-with-key", "worker", "push", "1", plain, "--heartbeat", testHeartbeat,
		"--key", filepath.Join(dir, "worker.key"), "--dispatcher-key", filepath.Join(dir, "dispatcher.pub"))
	withoutKey := startProc(t, "worker-without-key", "worker", "push", "1", curved, "--heartbeat", testHeartbeat)
	for _, w := range []struct {
		p    *proc
		want string
	}{{withKey, "--dispatcher-key"}, {withoutKey, "--key"}} {
		select {
		case <-w.p.exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s is still waiting", w.p.name)
		}
		if code := w.p.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(w.p.out.String(), w.want) {
			t.Errorf("%s: exit %d, output lacks %q:\n%s", w.p.name, code, w.want, tail(w.p.out.String(), 4))
		}
	}
}
