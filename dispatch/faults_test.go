package dispatch

import (
	"context"
	"maps"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"faas/internal/redistest"
	"faas/protocol"
	"faas/samples"
	"faas/store"
	"faas/task"
)

// The fault suite: each scenario is a load of sleep tasks, the moment to strike and the
// fault; one driver runs it in every mode where the fault makes sense. The driver starts
// the platform (a dispatcher, in-process or as a child process; for pull and push two
// workers, "w1" the one faults hit), submits the load, waits for the moment, applies the
// fault, waits until every task is terminal (or, for a hand-back, reads them at once) and
// checks each record, and that each task was announced terminal exactly once (none, for a
// hand-back); the scenario adds its own checks.

// faultScenario is one fault and what must hold after it.
type faultScenario struct {
	name  string
	modes []protocol.Mode

	tasks   int    // sleep tasks submitted
	sleepMs string // each task's input
	limits  task.Limits
	slots   int // each worker's
	workers int // pull and push: 1 or 2 (default 2)
	cfg     func(*Config)

	dispatcherProcess bool // the dispatcher runs as a child process (to SIGKILL it)
	victimProcess     bool // w1 runs as a child process (to SIGKILL or SIGSTOP it)

	// ready is the moment: the fault strikes once some record satisfies it.
	ready     func(store.Record) bool
	readyWhat string
	fault     func(t *testing.T, r *faultRun)

	// handedBack: the tasks are read right after the fault, not waited for (they went back
	// to the queue and nothing runs them). Otherwise every task must end COMPLETED.
	handedBack  bool
	maxAttempts int // of a COMPLETED task (0: 1)
	check       func(t *testing.T, r *faultRun, recs []store.Record)
}

// faultRun is a scenario running: what its fault and checks act on.
type faultRun struct {
	f              *fixture
	fn             store.Function
	ids            []string
	stopDispatcher func() error // in-process dispatcher
	dispatcher     *exec.Cmd    // child-process dispatcher
	stopW1         func()       // in-process w1
	w1             *exec.Cmd    // child-process w1
}

// stopDispatcherWithin stops the in-process dispatcher, which must return no error within
// limit.
func (r *faultRun) stopDispatcherWithin(t *testing.T, limit time.Duration) {
	t.Helper()
	start := time.Now()
	if err := r.stopDispatcher(); err != nil {
		t.Fatalf("dispatcher: %v", err)
	}
	if took := time.Since(start); took > limit {
		t.Errorf("dispatcher took %v to stop, want within %v", took, limit)
	}
}

func completed(r store.Record) bool { return r.Status == task.Completed }
func ranOnW1(r store.Record) bool   { return r.Worker == "w1" }

func faultScenarios() []faultScenario {
	workerLost := func(name string, sig syscall.Signal) faultScenario {
		return faultScenario{
			// One of two workers (a child process) dies mid-run, by SIGKILL or by SIGSTOP
			// (alive but silent); the dispatcher notices its missing heartbeats and its
			// tasks run again on the other worker.
			name: name, modes: remoteModes,
			tasks: 60, sleepMs: "100", slots: 2, victimProcess: true,
			ready: ranOnW1, readyWhat: "w1 to complete a task",
			fault: func(t *testing.T, r *faultRun) {
				if err := r.w1.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
			},
			maxAttempts: 99, // as many as the store allows: only re-runs elsewhere matter
			check: func(t *testing.T, r *faultRun, recs []store.Record) {
				reruns := 0
				for _, rec := range recs {
					if rec.Attempts > 1 {
						reruns++
						if rec.Worker != "w2" {
							t.Errorf("task %s re-run on %q, want the surviving worker", rec.ID, rec.Worker)
						}
					}
				}
				if reruns == 0 {
					t.Errorf("no task was re-run: the victim held nothing when it died?")
				}
				t.Logf("%d tasks re-run after the victim died", reruns)
			},
		}
	}
	return []faultScenario{
		workerLost("worker SIGKILL", syscall.SIGKILL),
		workerLost("worker SIGSTOP", syscall.SIGSTOP),
		{
			// A worker stopped gracefully mid-run says BYE, finishes what it runs and
			// returns quickly; nothing is lost and no attempt is charged.
			name: "worker stops", modes: remoteModes,
			tasks: 30, sleepMs: "150", slots: 2,
			ready: ranOnW1, readyWhat: "w1 to complete a task",
			fault: func(t *testing.T, r *faultRun) {
				start := time.Now()
				r.stopW1()
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("worker took %v to stop with 150ms tasks", d)
				}
			},
		},
		{
			// The dispatcher stops mid-run, within its drain timeout (2 s) plus writing,
			// leaving no lease; tasks are submitted while none runs; another starts on the
			// same port, the workers register again by themselves and every task completes
			// once: what the first held was handed back uncharged.
			name: "dispatcher restarts", modes: allModes,
			tasks: 20, sleepMs: "300", slots: 2,
			cfg:   func(c *Config) { c.DrainTimeout = 2 * time.Second },
			ready: completed, readyWhat: "some tasks to complete",
			fault: func(t *testing.T, r *faultRun) {
				r.stopDispatcherWithin(t, 5*time.Second) // the 2s drain timeout plus writing
				if n, err := r.f.st.LeaseCount(context.Background()); err != nil || n != 0 {
					t.Errorf("%d leases held after a clean stop (err %v), want 0", n, err)
				}
				r.ids = append(r.ids, r.f.submit(t, r.fn, repeat(20, "50"))...) // queued while no dispatcher runs
				r.stopDispatcher = r.f.startDispatcher(t)
			},
			check: func(t *testing.T, r *faultRun, recs []store.Record) {
				if r.f.mode == protocol.ModeLocal {
					return
				}
				per := byWorker(recs[20:])
				if len(per["w1"])+len(per["w2"]) != 20 {
					t.Errorf("tasks after the restart ran on %v", slices.Collect(maps.Keys(per)))
				}
			},
		},
		{
			// The dispatcher (a child process) is SIGKILLed mid-run and another starts on
			// the same port: the workers register again by themselves, results of tasks
			// they were running are recorded or fenced off, the dead dispatcher's leases
			// expire and its tasks run again; every task ends COMPLETED exactly once.
			name: "dispatcher SIGKILL", modes: allModes,
			tasks: 60, sleepMs: "100", slots: 2, dispatcherProcess: true,
			ready: completed, readyWhat: "some tasks to complete",
			fault: func(t *testing.T, r *faultRun) {
				r.dispatcher.Process.Kill()
				r.dispatcher.Wait()
				r.dispatcher = r.f.startDispatcherProcess(t)
			},
			maxAttempts: 99,
			check: func(t *testing.T, r *faultRun, recs []store.Record) {
				again := 0
				for _, rec := range recs {
					if rec.Attempts > 1 {
						again++
					}
				}
				t.Logf("%d tasks ran again after the dispatcher died", again)
			},
		},
		{
			// A dispatcher stopped (SIGTERM) while a task longer than the drain runs hands
			// that task back uncharged (PROTOCOL.md, Shutdown). A remote worker, told BYE,
			// keeps asking to register again: that is being heard from, not a silent
			// worker, so it must not be declared lost (which charged an attempt) during the
			// drain.
			name: "dispatcher stops with a task running", modes: allModes,
			tasks: 1, sleepMs: "20000", limits: task.Limits{TimeoutMs: 60_000}, slots: 1, workers: 1,
			ready:     func(r store.Record) bool { return r.Status == task.Running },
			readyWhat: "the task to run",
			fault: func(t *testing.T, r *faultRun) {
				r.stopDispatcherWithin(t, 10*time.Second)
			},
			handedBack: true,
		},
		{
			// Redis stops answering for two seconds mid-run (SIGSTOP); the dispatcher's
			// socket loop keeps heartbeats going (no worker is declared lost), claims and
			// writes retry, and when Redis is back every task completes, each exactly once.
			name: "redis pause", modes: allModes,
			tasks: 90, sleepMs: "40", slots: 3,
			ready: completed, readyWhat: "some tasks to complete",
			fault: func(t *testing.T, r *faultRun) {
				r.f.redis.Pause()
				time.Sleep(2 * time.Second)
				r.f.redis.Resume()
			},
		},
	}
}

// TestFaults runs every fault scenario in every mode it makes sense in.
func TestFaults(t *testing.T) {
	for _, sc := range faultScenarios() {
		for _, mode := range sc.modes {
			t.Run(string(mode)+"/"+sc.name, func(t *testing.T) { runFault(t, mode, sc) })
		}
	}
}

func runFault(t *testing.T, mode protocol.Mode, sc faultScenario) {
	f := newFixture(t, mode)
	if sc.cfg != nil {
		sc.cfg(&f.cfg)
	}
	r := &faultRun{f: f, fn: f.registerLimits(t, "sleep", samples.Sleep, sc.limits)}
	done := f.redis.Count(t, f.st.DoneChannel()) // before anything can become terminal
	if sc.dispatcherProcess {
		r.dispatcher = f.startDispatcherProcess(t)
	} else {
		r.stopDispatcher = f.startDispatcher(t)
	}
	if mode.Remote() {
		if sc.victimProcess {
			r.w1 = f.startWorkerProcess(t, "w1", sc.slots)
		} else {
			r.stopW1 = f.startWorker(t, "w1", sc.slots)
		}
		if sc.workers != 1 {
			f.startWorker(t, "w2", sc.slots)
		}
	}
	r.ids = f.submit(t, r.fn, repeat(sc.tasks, sc.sleepMs))
	f.waitAny(t, r.ids, sc.readyWhat, sc.ready)
	sc.fault(t, r)

	if sc.handedBack {
		for _, rec := range f.records(t, r.ids) {
			if rec.Status != task.Queued || rec.Attempts != 0 {
				t.Errorf("task %s after the dispatcher stopped: %s, %d attempts charged; want QUEUED with none",
					rec.ID, rec.Status, rec.Attempts)
			}
		}
		checkOnce(t, done, nil) // nothing became terminal
		return
	}
	recs := f.waitTerminal(t, r.ids, time.Minute)
	most := max(sc.maxAttempts, 1)
	for _, rec := range recs {
		if rec.Status != task.Completed || rec.Attempts < 1 || rec.Attempts > most {
			t.Fatalf("task %s: %s %+v after %d attempts; want COMPLETED within %d", rec.ID, rec.Status, rec.Error, rec.Attempts, most)
		}
	}
	if sc.check != nil {
		sc.check(t, r, recs)
	}
	checkOnce(t, done, r.ids)
}

// checkOnce fails the test unless each of ids was announced terminal exactly once, and no
// other task was.
func checkOnce(t *testing.T, done *redistest.Announcements, ids []string) {
	t.Helper()
	missing, twice, unknown := done.Once(ids, 5*time.Second)
	if len(missing)+len(twice)+len(unknown) > 0 {
		t.Fatalf("terminal announcements: never %v, more than once %v, of unknown tasks %v", missing, twice, unknown)
	}
}
