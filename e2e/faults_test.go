package e2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"faas/internal/testutil"
	"faas/store"
	"faas/task"
)

// Every test has its own redis-server and processes, so they run in parallel.

// A dispatcher killed mid-run loses nothing: a new one runs what was queued, and the tasks
// the dead one held come back when their leases expire (LeaseTTL). None becomes terminal
// twice.
func TestDispatcherKilledAndRestarted(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	done := p.countDone()
	d1, _ := p.dispatcher("dispatcher-1", "local", "-w", "8")
	ids := p.submit(300, 50)
	p.waitTerminal(ids, 60, 30*time.Second)
	d1.kill(t)
	leased, err := p.st.LeaseCount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the dispatcher holding %d leases", leased)

	d2, _ := p.dispatcher("dispatcher-2", "local", "-w", "8")
	rs := p.waitAll(ids, 60*time.Second)
	requireAllCompleted(t, rs, 2)
	done.check(t, ids)
	if leased > 0 && attempts(rs)[2] == 0 {
		t.Errorf("the killed dispatcher held %d leases, but no task ran twice: %v", leased, attempts(rs))
	}
	for _, r := range rs {
		if r.Attempts == 2 && !ranBy(r.Worker, d2.pid()) {
			t.Errorf("task %s re-ran (attempt 2) on %q, not on the new dispatcher", r.ID, r.Worker)
		}
	}
	t.Logf("attempts: %v; workers: %v", attempts(rs), byWorker(rs))
}

// A backlog submitted while no dispatcher runs (through the real server) is run when one
// starts.
func TestBacklogRunsWhenDispatcherStarts(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	_, c := p.server("server")
	ctx := context.Background()
	inputs := make([][]byte, 500)
	for i := range inputs {
		inputs[i] = []byte("5")
	}
	ids, err := c.ExecuteBatch(ctx, p.fn.ID, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.st.QueueLen(ctx); err != nil || n != 500 {
		t.Fatalf("queue length %d (%v), want 500", n, err)
	}
	p.dispatcher("dispatcher", "local", "-w", "8")
	rs := p.waitAll(ids, 60*time.Second)
	requireAllCompleted(t, rs, 1)
	if n, _ := p.st.QueueLen(ctx); n != 0 {
		t.Errorf("queue length %d after the run", n)
	}
}

// Redis unreachable for a few seconds mid-run: the server answers 503 meanwhile, and the
// run completes once Redis is back.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		redisArgs []string
		down, up  func(p *platform)
	}{
		{
			// The server process is frozen: connections stay open, nothing answers.
			name: "paused",
			down: func(p *platform) { p.redis.Pause() },
			up:   func(p *platform) { p.redis.Resume() },
		},
		{
			// A crash (SIGKILL: no final write) and a restart of a server that fsyncs its
			// append-only file on every write: nothing acknowledged is lost.
			name:      "killed and restarted with appendfsync always",
			redisArgs: []string{"--appendonly", "yes", "--appendfsync", "always"},
			down:      func(p *platform) { p.redis.Kill() },
			up:        func(p *platform) { p.redis.Restart(p.tb) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, tc.redisArgs...)
			_, c := p.server("server")
			p.dispatcher("dispatcher", "local", "-w", "8")
			ids := p.submit(200, 50)
			p.waitTerminal(ids, 40, 30*time.Second)

			tc.down(p)
			downAt := time.Now()
			// A request made while Redis is down is answered 503 (after the store's
			// client timeouts, about 4 s, when the server is paused).
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			_, err := c.Status(ctx, ids[len(ids)-1])
			cancel()
			if !isUnavailable(err) {
				t.Errorf("status while Redis is down: %v, want a 503 unavailable", err)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
			_, err = c.ExecuteBatch(ctx, p.fn.ID, [][]byte{[]byte("1")})
			cancel()
			if !isUnavailable(err) {
				t.Errorf("execute while Redis is down: %v, want a 503 unavailable", err)
			}
			// Keep Redis down for at least 3 s whatever the answers took (an outage
			// length, not a synchronisation).
			time.Sleep(time.Until(downAt.Add(3 * time.Second)))
			t.Logf("Redis down for %v", time.Since(downAt).Round(time.Millisecond))
			tc.up(p)

			// No attempt is charged by an outage (docs/RATIONALE.md): leases that expired
			// meanwhile are renewed, not recovered, and the tasks of a claim whose answer
			// was lost are handed back uncharged.
			rs := p.waitAll(ids, 60*time.Second)
			requireAllCompleted(t, rs, 1)
			t.Logf("attempts: %v", attempts(rs))
			testutil.WaitForProgress(t, 10*time.Second, "the server answers again", func() (bool, string) {
				_, err := c.Status(context.Background(), ids[0])
				return err == nil, fmt.Sprint(err)
			})
		})
	}
}

// Two dispatchers on one Redis drain 1,000 tasks together, each task run exactly once.
func TestTwoDispatchersRunEachTaskOnce(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	done := p.countDone()
	d1, _ := p.dispatcher("dispatcher-1", "local", "-w", "4")
	d2, _ := p.dispatcher("dispatcher-2", "local", "-w", "4")
	ids := p.submit(1000, 10)
	rs := p.waitAll(ids, 90*time.Second)
	requireAllCompleted(t, rs, 1)
	done.check(t, ids)
	n1, n2 := 0, 0
	for _, r := range rs {
		switch {
		case ranBy(r.Worker, d1.pid()):
			n1++
		case ranBy(r.Worker, d2.pid()):
			n2++
		default:
			t.Errorf("task %s ran on %q, neither dispatcher", r.ID, r.Worker)
		}
	}
	t.Logf("dispatcher 1 ran %d, dispatcher 2 ran %d", n1, n2)
	if n1 == 0 || n2 == 0 {
		t.Errorf("one dispatcher ran nothing: %d and %d", n1, n2)
	}
}

// SIGTERM stops a local dispatcher within 10 s; what it held goes back uncharged and a
// new dispatcher finishes the run.
func TestDispatcherGracefulStop(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	done := p.countDone()
	d1, _ := p.dispatcher("dispatcher-1", "local", "-w", "8")
	ids := p.submit(300, 50)
	p.waitTerminal(ids, 60, 30*time.Second)
	took := d1.stop(t, 10*time.Second)
	t.Logf("dispatcher stopped %v after SIGTERM", took.Round(time.Millisecond))
	if n, err := p.st.LeaseCount(context.Background()); err != nil || n != 0 {
		t.Errorf("%d leases (%v) left by a cleanly stopped dispatcher, want 0", n, err)
	}
	p.dispatcher("dispatcher-2", "local", "-w", "8")
	rs := p.waitAll(ids, 60*time.Second)
	requireAllCompleted(t, rs, 1)
	done.check(t, ids)
}

// ---------------------------------------------------------------------------------------
// Remote modes (pull and push): workers are separate processes speaking ZeroMQ.

var remoteModes = []string{"pull", "push"}

// SIGKILL one of two workers in the middle of 200 sleep tasks: its tasks run again on the
// other, and all 200 complete.
func TestWorkerKilled(t *testing.T) {
	t.Parallel()
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t)
			done := p.countDone()
			_, ep := p.dispatcher("dispatcher", mode)
			w1 := p.worker("worker-1", mode, 4, ep)
			p.worker("worker-2", mode, 4, ep)
			ids := p.submit(200, 50)
			p.waitTerminal(ids, 40, 30*time.Second)
			w1.kill(t)
			rs := p.waitAll(ids, 60*time.Second)
			requireAllCompleted(t, rs, 2)
			done.check(t, ids)
			checkRerunElsewhere(t, rs, w1.pid())
		})
	}
}

// A worker that stops answering (SIGSTOP) is declared lost after the heartbeat timeout and
// its tasks run elsewhere; when it wakes up, its late results change nothing.
func TestWorkerFrozen(t *testing.T) {
	t.Parallel()
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t)
			done := p.countDone()
			_, ep := p.dispatcher("dispatcher", mode)
			w1 := p.worker("worker-1", mode, 4, ep)
			p.worker("worker-2", mode, 4, ep)
			ids := p.submit(200, 50)
			p.waitTerminal(ids, 40, 30*time.Second)
			w1.signal(t, syscall.SIGSTOP)
			rs := p.waitAll(ids, 60*time.Second)
			requireAllCompleted(t, rs, 2)
			checkRerunElsewhere(t, rs, w1.pid())

			w1.signal(t, syscall.SIGCONT)
			// Give the woken worker time to deliver its late results (a window in which
			// nothing may change, not a synchronisation).
			time.Sleep(1500 * time.Millisecond)
			after, err := p.records(ids)
			if err != nil {
				t.Fatal(err)
			}
			for i := range rs {
				if after[i].Status != rs[i].Status || after[i].Attempts != rs[i].Attempts ||
					after[i].Worker != rs[i].Worker || !after[i].FinishedAt.Equal(rs[i].FinishedAt) {
					t.Errorf("task %s changed after the frozen worker woke: %+v → %+v", ids[i], rs[i], after[i])
				}
			}
			done.check(t, ids)
		})
	}
}

// checkRerunElsewhere checks that the lost worker (pid) held tasks when it was lost, that
// they ran again (attempt 2), and that each re-run's result came from another worker.
func checkRerunElsewhere(tb testing.TB, rs []store.Record, pid int) {
	tb.Helper()
	rerun := 0
	for _, r := range rs {
		if r.Attempts < 2 {
			continue
		}
		rerun++
		if ranBy(r.Worker, pid) {
			tb.Errorf("task %s: attempt %d recorded from the lost worker %q", r.ID, r.Attempts, r.Worker)
		}
	}
	if rerun == 0 {
		tb.Errorf("no task ran twice: the lost worker (pid %d) held nothing? attempts %v, workers %v",
			pid, attempts(rs), byWorker(rs))
	}
	tb.Logf("attempts: %v; workers: %v", attempts(rs), byWorker(rs))
}

// SIGTERM a worker mid-run: it exits within 10 s, hands back what it held (uncharged) and
// the other worker finishes the run.
func TestWorkerGracefulStop(t *testing.T) {
	t.Parallel()
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t)
			done := p.countDone()
			_, ep := p.dispatcher("dispatcher", mode)
			w1 := p.worker("worker-1", mode, 4, ep)
			p.worker("worker-2", mode, 4, ep)
			ids := p.submit(200, 50)
			p.waitTerminal(ids, 40, 30*time.Second)
			took := w1.stop(t, 10*time.Second)
			t.Logf("worker stopped %v after SIGTERM", took.Round(time.Millisecond))
			rs := p.waitAll(ids, 60*time.Second)
			requireAllCompleted(t, rs, 1)
			done.check(t, ids)
		})
	}
}

// A remote-mode dispatcher killed and restarted on the same port: its workers reconnect by
// themselves, and every task completes, none twice.
func TestRemoteDispatcherKilledAndRestarted(t *testing.T) {
	t.Parallel()
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t)
			done := p.countDone()
			d1, ep := p.dispatcher("dispatcher-1", mode)
			p.worker("worker-1", mode, 4, ep)
			p.worker("worker-2", mode, 4, ep)
			ids := p.submit(200, 50)
			p.waitTerminal(ids, 40, 30*time.Second)
			d1.kill(t)
			p.dispatcherAt("dispatcher-2", mode, ep)
			rs := p.waitAll(ids, 60*time.Second)
			requireAllCompleted(t, rs, 2)
			done.check(t, ids)
			t.Logf("attempts: %v", attempts(rs))
		})
	}
}

// SIGTERM a remote-mode dispatcher mid-run: it exits within 10 s leaving no lease behind, and
// once it is started again its workers come back by themselves and finish the run, no task
// charged an attempt.
func TestRemoteDispatcherGracefulStop(t *testing.T) {
	t.Parallel()
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t)
			done := p.countDone()
			d1, ep := p.dispatcher("dispatcher-1", mode)
			p.worker("worker-1", mode, 4, ep)
			p.worker("worker-2", mode, 4, ep)
			ids := p.submit(200, 50)
			p.waitTerminal(ids, 40, 30*time.Second)
			took := d1.stop(t, 10*time.Second)
			t.Logf("dispatcher stopped %v after SIGTERM", took.Round(time.Millisecond))
			if n, err := p.st.LeaseCount(context.Background()); err != nil || n != 0 {
				t.Errorf("%d leases (%v) left by a cleanly stopped dispatcher, want 0", n, err)
			}
			p.dispatcherAt("dispatcher-2", mode, ep)
			rs := p.waitAll(ids, 60*time.Second)
			requireAllCompleted(t, rs, 1)
			done.check(t, ids)
		})
	}
}

// TestAttemptsRunOut kills the only worker while it runs tasks that may start only once
// (--max-attempts 1): each becomes FAILED with kind worker_lost, exactly once, instead of
// running again or staying RUNNING.
func TestAttemptsRunOut(t *testing.T) {
	t.Parallel()
	for _, mode := range remoteModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t)
			done := p.countDone()
			_, ep := p.dispatcher("dispatcher", mode, "--max-attempts", "1")
			w := p.worker("worker", mode, 4, ep)
			ids := p.submit(4, 30_000)
			testutil.WaitForProgress(t, 20*time.Second, "all 4 tasks RUNNING", func() (bool, string) {
				rs, err := p.records(ids)
				if err != nil {
					return false, err.Error()
				}
				c := tally(rs)
				return c[task.Running] == 4, fmt.Sprint(c)
			})
			w.kill(t)
			rs := p.waitAll(ids, 30*time.Second)
			for _, r := range rs {
				if r.Status != task.Failed || r.Error == nil || r.Error.Kind != "worker_lost" {
					t.Errorf("task %s: %s %+v, want FAILED worker_lost", r.ID, r.Status, r.Error)
				}
				if r.Attempts != 1 {
					t.Errorf("task %s: %d attempts, want 1", r.ID, r.Attempts)
				}
			}
			done.check(t, ids)
		})
	}
}
