package e2e

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"faas/client"
	"faas/internal/testutil"
	"faas/store"
	"faas/task"
)

// The fault suite: each scenario is a platform (one or two dispatchers; for pull and push,
// two workers each running 4 tasks at once, "worker-1" the one faults hit), a load of sleep
// tasks, the moment to strike and the fault. One driver runs it in every mode where the
// fault makes sense, all in parallel (each has its own redis-server and processes): it
// submits, waits for the moment, applies the fault, waits until every task is terminal and
// checks that each became terminal exactly once (the done announcements) with the expected
// status; the scenario adds its own checks.

var (
	allModes    = []string{"local", "pull", "push"}
	remoteModes = []string{"pull", "push"}
)

// fault is one scenario of the suite.
type fault struct {
	name  string
	modes []string

	redisArgs      []string // redis-server's command line, added
	dispatcherArgs []string // every dispatcher's, added
	dispatchers    int      // default 1; a remote worker i serves dispatcher i mod dispatchers
	workers        int      // pull and push: default 2
	slots          int      // local: -w of each dispatcher (default 8); remote: each worker's (default 4)
	server         bool     // run `faas server` too (run.client)

	tasks, ms int  // sleep tasks submitted, and each one's milliseconds
	backlog   bool // submit through the server before any dispatcher or worker starts

	after int                        // the moment: this many tasks terminal, or
	ready func(t *testing.T, r *run) // a wait of the scenario's own
	apply func(t *testing.T, r *run)

	within      time.Duration                         // for every task to become terminal (default 60 s)
	maxAttempts int                                   // of a COMPLETED task (default 1)
	outcome     func(t *testing.T, rs []store.Record) // instead of requireAllCompleted
	check       func(t *testing.T, r *run, rs []store.Record)

	// noDoneCount: Redis goes down in the scenario, which ends (killed) or may hold back
	// (paused) the announcements' subscription, so they are not counted.
	noDoneCount bool
}

// run is a scenario running on one platform: what its fault and checks act on.
type run struct {
	p           *platform
	mode        string
	args        []string // each dispatcher's extra arguments
	client      *client.Client
	dispatchers []*proc
	endpoints   []string // remote modes: dispatcher i's
	workers     []*proc
	ids         []string
	leased      int // leases the killed dispatcher held
}

// restartDispatcher starts dispatcher i again (on its endpoint: its workers come back).
func (r *run) restartDispatcher(i int) *proc {
	r.p.tb.Helper()
	d := r.p.dispatcherAt(fmt.Sprintf("dispatcher-%d-again", i+1), r.mode, r.endpoints[i], r.args...)
	r.dispatchers = append(r.dispatchers, d)
	return d
}

// runners are the processes that run tasks, whose pids the records' worker names carry: the
// dispatchers in local mode, the workers otherwise.
func (r *run) runners() []*proc {
	if r.mode == "local" {
		return r.dispatchers
	}
	return r.workers
}

func faults() []fault {
	return []fault{
		{
			// A dispatcher killed mid-run loses nothing: a new one runs what was queued (in
			// remote modes its workers come back by themselves), and the tasks the dead one
			// held come back when their leases expire (LeaseTTL). None becomes terminal twice.
			name: "dispatcher SIGKILL", modes: allModes,
			tasks: 300, ms: 50, after: 60, maxAttempts: 2,
			apply: func(t *testing.T, r *run) {
				r.dispatchers[0].kill(t)
				leased, err := r.p.st.LeaseCount(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				r.leased = int(leased)
				t.Logf("killed the dispatcher holding %d leases", leased)
				r.restartDispatcher(0)
			},
			check: func(t *testing.T, r *run, rs []store.Record) {
				t.Logf("attempts: %v; workers: %v", attempts(rs), byWorker(rs))
				if r.mode != "local" {
					return // the workers, not the dispatchers, ran the tasks
				}
				if r.leased > 0 && attempts(rs)[2] == 0 {
					t.Errorf("the killed dispatcher held %d leases, but no task ran twice: %v", r.leased, attempts(rs))
				}
				d2 := r.dispatchers[len(r.dispatchers)-1]
				for _, rec := range rs {
					if rec.Attempts == 2 && !ranBy(rec.Worker, d2.pid()) {
						t.Errorf("task %s re-ran (attempt 2) on %q, not on the new dispatcher", rec.ID, rec.Worker)
					}
				}
			},
		},
		{
			// SIGTERM stops a dispatcher within 10 s, leaving no lease: what it held goes
			// back uncharged, and once a dispatcher is started again (in remote modes its
			// workers come back by themselves) the run finishes, no task charged an attempt.
			name: "dispatcher SIGTERM", modes: allModes,
			tasks: 300, ms: 50, after: 60,
			apply: func(t *testing.T, r *run) {
				r.dispatchers[0].stop(t, 10*time.Second)
				if n, err := r.p.st.LeaseCount(context.Background()); err != nil || n != 0 {
					t.Errorf("%d leases (%v) left by a cleanly stopped dispatcher, want 0", n, err)
				}
				r.restartDispatcher(0)
			},
		},
		{
			// A backlog submitted while no dispatcher runs (through the real server) is run
			// when one starts.
			name: "backlog", modes: allModes,
			server: true, backlog: true, tasks: 500, ms: 5,
			check: func(t *testing.T, r *run, rs []store.Record) {
				if n, _ := r.p.st.QueueLen(context.Background()); n != 0 {
					t.Errorf("queue length %d after the run", n)
				}
			},
		},
		redisOutage("redis paused", nil,
			// The server process is frozen: connections stay open, nothing answers.
			func(p *platform) { p.redis.Pause() },
			func(p *platform) { p.redis.Resume() }),
		redisOutage("redis killed and restarted with appendfsync always",
			// A crash (SIGKILL: no final write) and a restart of a server that fsyncs its
			// append-only file on every write: nothing acknowledged is lost.
			[]string{"--appendonly", "yes", "--appendfsync", "always"},
			func(p *platform) { p.redis.Kill() },
			func(p *platform) { p.redis.Restart(p.tb) }),
		{
			// Two dispatchers on one Redis (in remote modes, each with a worker of its own)
			// drain 1,000 tasks together, each task run exactly once, both doing some.
			name: "two dispatchers", modes: allModes,
			dispatchers: 2, slots: 4, tasks: 1000, ms: 10, within: 90 * time.Second,
			check: func(t *testing.T, r *run, rs []store.Record) {
				runners := r.runners()
				n := make([]int, len(runners))
			next:
				for _, rec := range rs {
					for i, p := range runners {
						if ranBy(rec.Worker, p.pid()) {
							n[i]++
							continue next
						}
					}
					t.Errorf("task %s ran on %q, on neither dispatcher", rec.ID, rec.Worker)
				}
				t.Logf("ran on each dispatcher's side: %v", n)
				if n[0] == 0 || n[1] == 0 {
					t.Errorf("one dispatcher ran nothing: %d and %d", n[0], n[1])
				}
			},
		},
		workerLost("worker SIGKILL", func(t *testing.T, r *run) { r.workers[0].kill(t) }, nil),
		// A worker that stops answering (SIGSTOP) is declared lost after the heartbeat
		// timeout and its tasks run elsewhere; when it wakes up, its late results change
		// nothing (and announce nothing).
		workerLost("worker SIGSTOP", func(t *testing.T, r *run) { r.workers[0].signal(t, syscall.SIGSTOP) },
			func(t *testing.T, r *run, rs []store.Record) {
				r.workers[0].signal(t, syscall.SIGCONT)
				// Give the woken worker time to deliver its late results (a window in
				// which nothing may change, not a synchronisation).
				time.Sleep(1500 * time.Millisecond)
				after, err := r.p.records(r.ids)
				if err != nil {
					t.Fatal(err)
				}
				for i := range rs {
					if after[i].Status != rs[i].Status || after[i].Attempts != rs[i].Attempts ||
						after[i].Worker != rs[i].Worker || !after[i].FinishedAt.Equal(rs[i].FinishedAt) {
						t.Errorf("task %s changed after the frozen worker woke: %+v → %+v", r.ids[i], rs[i], after[i])
					}
				}
			}),
		{
			// SIGTERM a worker mid-run: it exits within 10 s, hands back what it held
			// (uncharged) and the other worker finishes the run.
			name: "worker SIGTERM", modes: remoteModes,
			tasks: 200, ms: 50, after: 40,
			apply: func(t *testing.T, r *run) {
				r.workers[0].stop(t, 10*time.Second)
			},
		},
		{
			// The only worker is killed while it runs tasks that may start only once
			// (--max-attempts 1): each becomes FAILED with kind worker_lost, exactly once,
			// instead of running again or staying RUNNING.
			name: "attempts run out", modes: remoteModes,
			dispatcherArgs: []string{"--max-attempts", "1"}, workers: 1,
			tasks: 4, ms: 30_000, within: 30 * time.Second,
			ready: func(t *testing.T, r *run) {
				testutil.WaitForProgress(t, 20*time.Second, "all 4 tasks RUNNING", func() (bool, string) {
					rs, err := r.p.records(r.ids)
					if err != nil {
						return false, err.Error()
					}
					c := tally(rs)
					return c[task.Running] == 4, fmt.Sprint(c)
				})
			},
			apply: func(t *testing.T, r *run) { r.workers[0].kill(t) },
			outcome: func(t *testing.T, rs []store.Record) {
				for _, rec := range rs {
					if rec.Status != task.Failed || rec.Error == nil || rec.Error.Kind != "worker_lost" {
						t.Errorf("task %s: %s %+v, want FAILED worker_lost", rec.ID, rec.Status, rec.Error)
					}
					if rec.Attempts != 1 {
						t.Errorf("task %s: %d attempts, want 1", rec.ID, rec.Attempts)
					}
				}
			},
		},
	}
}

// redisOutage: Redis unreachable for a few seconds mid-run: the server answers 503
// meanwhile, and the run completes once Redis is back, no attempt charged.
func redisOutage(name string, redisArgs []string, down, up func(p *platform)) fault {
	return fault{
		name: name, modes: allModes, redisArgs: redisArgs,
		server: true, tasks: 200, ms: 50, after: 40, noDoneCount: true,
		apply: func(t *testing.T, r *run) {
			down(r.p)
			downAt := time.Now()
			// A request made while Redis is down is answered 503 (after the store's
			// client timeouts, about 4 s, when the server is paused).
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			_, err := r.client.Status(ctx, r.ids[len(r.ids)-1])
			cancel()
			if !isUnavailable(err) {
				t.Errorf("status while Redis is down: %v, want a 503 unavailable", err)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
			_, err = r.client.ExecuteBatch(ctx, r.p.fn.ID, [][]byte{[]byte("1")})
			cancel()
			if !isUnavailable(err) {
				t.Errorf("execute while Redis is down: %v, want a 503 unavailable", err)
			}
			// Keep Redis down for at least 3 s whatever the answers took (an outage
			// length, not a synchronisation).
			time.Sleep(time.Until(downAt.Add(3 * time.Second)))
			t.Logf("Redis down for %v", time.Since(downAt).Round(time.Millisecond))
			up(r.p)
		},
		// No attempt is charged by an outage (docs/RATIONALE.md): leases that expired
		// meanwhile are renewed, not recovered, and the tasks of a claim whose answer was
		// lost are handed back uncharged.
		check: func(t *testing.T, r *run, rs []store.Record) {
			t.Logf("attempts: %v", attempts(rs))
			testutil.WaitForProgress(t, 10*time.Second, "the server answers again", func() (bool, string) {
				_, err := r.client.Status(context.Background(), r.ids[0])
				return err == nil, fmt.Sprint(err)
			})
		},
	}
}

// workerLost: one of two workers is lost mid-run (apply); its tasks run again on the other,
// and all complete.
func workerLost(name string, apply func(t *testing.T, r *run), then func(t *testing.T, r *run, rs []store.Record)) fault {
	return fault{
		name: name, modes: remoteModes,
		tasks: 200, ms: 50, after: 40, maxAttempts: 2,
		apply: apply,
		check: func(t *testing.T, r *run, rs []store.Record) {
			checkRerunElsewhere(t, rs, r.workers[0].pid())
			if then != nil {
				then(t, r, rs)
			}
		},
	}
}

// TestFaults runs every fault scenario in every mode it makes sense in.
func TestFaults(t *testing.T) {
	t.Parallel()
	for _, sc := range faults() {
		for _, mode := range sc.modes {
			t.Run(mode+"/"+sc.name, func(t *testing.T) {
				t.Parallel()
				runFault(t, mode, sc)
			})
		}
	}
}

func runFault(t *testing.T, mode string, sc fault) {
	p := newPlatform(t, sc.redisArgs...)
	var done *doneCounter
	if !sc.noDoneCount {
		done = p.countDone()
	}
	r := &run{p: p, mode: mode}
	if sc.server {
		_, r.client = p.server("server")
	}
	if sc.backlog {
		r.ids = backlog(t, r, sc.tasks, sc.ms)
	}
	startPlatform(t, r, sc)
	if !sc.backlog {
		r.ids = p.submit(sc.tasks, sc.ms)
	}
	switch {
	case sc.ready != nil:
		sc.ready(t, r)
	case sc.after > 0:
		p.waitTerminal(r.ids, sc.after, 30*time.Second)
	}
	if sc.apply != nil {
		sc.apply(t, r)
	}

	rs := p.waitAll(r.ids, cmp.Or(sc.within, 60*time.Second))
	if sc.outcome != nil {
		sc.outcome(t, rs)
	} else {
		requireAllCompleted(t, rs, cmp.Or(sc.maxAttempts, 1))
	}
	if sc.check != nil {
		sc.check(t, r, rs)
	}
	if done != nil {
		done.check(t, r.ids)
	}
}

// startPlatform starts the scenario's dispatchers and, in remote modes, its workers.
func startPlatform(t *testing.T, r *run, sc fault) {
	t.Helper()
	slots := cmp.Or(sc.slots, 4)
	r.args = sc.dispatcherArgs
	if r.mode == "local" {
		slots = cmp.Or(sc.slots, 8)
		r.args = append([]string{"-w", strconv.Itoa(slots)}, r.args...)
	}
	for i := range cmp.Or(sc.dispatchers, 1) {
		d, ep := r.p.dispatcher(fmt.Sprintf("dispatcher-%d", i+1), r.mode, r.args...)
		r.dispatchers = append(r.dispatchers, d)
		r.endpoints = append(r.endpoints, ep)
	}
	if r.mode == "local" {
		return
	}
	for i := range cmp.Or(sc.workers, 2) {
		ep := r.endpoints[i%len(r.endpoints)]
		r.workers = append(r.workers, r.p.worker(fmt.Sprintf("worker-%d", i+1), r.mode, slots, ep))
	}
}

// backlog submits n sleep tasks of ms through the server while nothing runs them: all of
// them wait in the queue.
func backlog(t *testing.T, r *run, n, ms int) []string {
	t.Helper()
	ctx := context.Background()
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = []byte(strconv.Itoa(ms))
	}
	ids, err := r.client.ExecuteBatch(ctx, r.p.fn.ID, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.p.st.QueueLen(ctx); err != nil || got != int64(n) {
		t.Fatalf("queue length %d (%v), want %d", got, err, n)
	}
	return ids
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
