package dispatch

import (
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/internal/zsock"
	"faas/protocol"
	"faas/samples"
	"faas/store"
	"faas/task"
)

// maxConcurrent is the most tasks of recs that overlapped in time, each taken to run from
// its start (claim time, which in pull and push mode is when a slot asked or was free)
// for its sandbox duration. tolerance absorbs the records' millisecond rounding.
func maxConcurrent(recs []store.Record, tolerance time.Duration) int {
	type edge struct {
		at time.Time
		d  int
	}
	var edges []edge
	for _, r := range recs {
		start := r.StartedAt
		end := start.Add(time.Duration(r.DurationMs)*time.Millisecond - tolerance)
		if !end.After(start) {
			continue
		}
		edges = append(edges, edge{start, +1}, edge{end, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.d - b.d // ends before starts at the same instant
	})
	cur, most := 0, 0
	for _, e := range edges {
		cur += e.d
		most = max(most, cur)
	}
	return most
}

// completedByWorker waits until every task is terminal, fails the test unless each is
// COMPLETED, and returns the records by the worker that ran them.
func (f *fixture) completedByWorker(t *testing.T, ids []string) map[string][]store.Record {
	t.Helper()
	recs := f.waitTerminal(t, ids, time.Minute)
	for _, r := range recs {
		if r.Status != task.Completed {
			t.Fatalf("task %s: %s %+v", r.ID, r.Status, r.Error)
		}
	}
	return byWorker(recs)
}

func byWorker(recs []store.Record) map[string][]store.Record {
	m := make(map[string][]store.Record)
	for _, r := range recs {
		m[r.Worker] = append(m[r.Worker], r)
	}
	return m
}

// mixedTasks submits n tasks cycling through several samples and returns their ids and
// the result each must have.
func (f *fixture) mixedTasks(t *testing.T, n int) (ids []string, want []string) {
	t.Helper()
	fns := []struct {
		fn    store.Function
		input func(i int) string
		want  func(i int) string
	}{
		{f.register(t, "double_wat", samples.DoubleWAT), strconv.Itoa, func(i int) string { return strconv.Itoa(2 * i) }},
		{f.register(t, "double_c", samples.DoubleC), strconv.Itoa, func(i int) string { return strconv.Itoa(2 * i) }},
		{f.register(t, "echo", samples.Echo), func(i int) string { return fmt.Sprintf("echo\x00%d\n", i) }, func(i int) string { return fmt.Sprintf("echo\x00%d\n", i) }},
		{f.register(t, "fib", samples.Fib), func(i int) string { return strconv.Itoa(i % 20) }, func(i int) string { return strconv.Itoa(fib(i % 20)) }},
	}
	inputs := make([][][]byte, len(fns))
	idx := make([][]int, len(fns))
	for i := range n {
		k := i % len(fns)
		inputs[k] = append(inputs[k], []byte(fns[k].input(i)))
		idx[k] = append(idx[k], i)
	}
	ids, want = make([]string, n), make([]string, n)
	for k, fn := range fns {
		got := f.submit(t, fn.fn, inputs[k])
		for j, id := range got {
			ids[idx[k][j]] = id
			want[idx[k][j]] = fn.want(idx[k][j])
		}
	}
	return ids, want
}

func fib(n int) int {
	a, b := 0, 1
	for range n {
		a, b = b, a+b
	}
	return a
}

func checkResults(t *testing.T, recs []store.Record, want []string, workers ...string) {
	t.Helper()
	for i, r := range recs {
		if r.Status != task.Completed || string(r.Result) != want[i] {
			t.Fatalf("task %d: %s %q %+v, want COMPLETED %q", i, r.Status, r.Result, r.Error, want[i])
		}
		if len(workers) > 0 && !slices.Contains(workers, r.Worker) {
			t.Fatalf("task %d ran on %q, want one of %v", i, r.Worker, workers)
		}
	}
}

// TestRemoteMixed: 1,000 tasks of mixed samples through a dispatcher and two workers, all
// with the right results, each recorded with the worker that ran it; both workers served.
func TestRemoteMixed(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(string(mode), func(t *testing.T) {
			f := newFixture(t, mode)
			f.startDispatcher(t)
			f.startWorker(t, "w1", 4)
			f.startWorker(t, "w2", 4)
			ids, want := f.mixedTasks(t, 1000)
			recs := f.waitTerminal(t, ids, time.Minute)
			checkResults(t, recs, want, "w1", "w2")
			per := byWorker(recs)
			if len(per["w1"]) == 0 || len(per["w2"]) == 0 {
				t.Errorf("split w1=%d w2=%d: one worker did nothing", len(per["w1"]), len(per["w2"]))
			}
			t.Logf("split: w1=%d w2=%d", len(per["w1"]), len(per["w2"]))
		})
	}
}

// TestPullSlotLimit: a pull worker with one slot never runs two tasks at once, while a
// worker with three slots beside it does run several.
func TestPullSlotLimit(t *testing.T) {
	f := newFixture(t, protocol.ModePull)
	fn := f.register(t, "sleep", samples.Sleep)
	f.startDispatcher(t)
	f.startWorker(t, "one", 1)
	f.startWorker(t, "three", 3)
	per := f.completedByWorker(t, f.submit(t, fn, repeat(40, "60")))
	if got := maxConcurrent(per["one"], 2*time.Millisecond); got != 1 {
		t.Errorf("worker with 1 slot ran %d tasks at once (%d tasks)", got, len(per["one"]))
	}
	if got := maxConcurrent(per["three"], 2*time.Millisecond); got > 3 || got < 2 {
		t.Errorf("worker with 3 slots ran at most %d at once, want 2..3", got)
	}
	t.Logf("split: one=%d three=%d", len(per["one"]), len(per["three"]))
}

// TestPushCapacitySplit: push workers of capacity 1 and 3 share sleep tasks close to 1:3,
// and neither ever runs more than its capacity.
func TestPushCapacitySplit(t *testing.T) {
	f := newFixture(t, protocol.ModePush)
	fn := f.register(t, "sleep", samples.Sleep)
	f.startDispatcher(t)
	f.startWorker(t, "cap1", 1)
	f.startWorker(t, "cap3", 3)
	// Both registered before any task exists, so the split measures the scheduler.
	time.Sleep(3 * fastBeat)
	per := f.completedByWorker(t, f.submit(t, fn, repeat(80, "50")))
	c1, c3 := maxConcurrent(per["cap1"], 2*time.Millisecond), maxConcurrent(per["cap3"], 2*time.Millisecond)
	if c1 > 1 || c3 > 3 {
		t.Errorf("ran at once: cap1=%d cap3=%d; capacities are 1 and 3", c1, c3)
	}
	n1, n3 := len(per["cap1"]), len(per["cap3"])
	share := float64(n1) / float64(n1+n3)
	if share < 0.15 || share > 0.35 {
		t.Errorf("split cap1=%d cap3=%d (share %.2f), want close to 1:3", n1, n3, share)
	}
	t.Logf("split cap1=%d cap3=%d, at once cap1=%d cap3=%d", n1, n3, c1, c3)
}

// TestRemoteBadMessages: the dispatcher answers malformed, wrong-version and unknown-worker
// messages with an ERROR of the right code, and keeps serving.
func TestRemoteBadMessages(t *testing.T) {
	f := newFixture(t, protocol.ModePush)
	f.startDispatcher(t)
	d, err := zmq.NewSocket(zmq.DEALER)
	if err != nil {
		t.Fatal(err)
	}
	d.SetLinger(0)
	defer d.Close()
	if err := d.Connect(f.endpoint); err != nil {
		t.Fatal(err)
	}
	d.SetRcvtimeo(5 * time.Second)
	cases := []struct {
		name string
		body [][]byte
		code string
	}{
		{"no type", [][]byte{{protocol.Version}}, protocol.CodeMalformed},
		{"unknown type", [][]byte{{protocol.Version}, {99}}, protocol.CodeMalformed},
		{"other version", [][]byte{{protocol.Version + 1}, {byte(protocol.TypeHeartbeat)}, []byte("w")}, protocol.CodeBadVersion},
		{"short registration", [][]byte{{protocol.Version}, {byte(protocol.TypeRegistration)}, []byte("w")}, protocol.CodeMalformed},
		{"unknown worker", protocol.Encode(protocol.Heartbeat{Sender: "stranger"}), protocol.CodeUnknownWorker},
		{"wrong mode", protocol.Encode(protocol.Registration{Worker: "w", Mode: "pull", Capacity: 1}), protocol.CodeWrongMode},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := zsock.Send(d, 0, protocol.Delimiter, c.body); err != nil {
				t.Fatal(err)
			}
			frames, err := d.RecvMessageBytes(0)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			m, err := protocol.Decode(frames[1:])
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := m.(protocol.Error); !ok || e.Code != c.code {
				t.Fatalf("answer %#v, want ERROR %s", m, c.code)
			}
		})
	}
	// Still serving: a registration is acknowledged.
	if err := zsock.Send(d, 0, protocol.Delimiter, protocol.Encode(protocol.Registration{Worker: "w", Mode: "push", Capacity: 1})); err != nil {
		t.Fatal(err)
	}
	frames, err := d.RecvMessageBytes(0)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := protocol.Decode(frames[1:]); err != nil || m.Type() != protocol.TypeAck {
		t.Fatalf("answer %v %v, want ACK", m, err)
	}
}

// TestRemoteIdle: with nothing to do, a dispatcher and two workers use almost no CPU (no
// polling loop spins), and a task submitted to the idle system completes within
// milliseconds (the held request or the free slot is served on the "tasks" wake-up).
func TestRemoteIdle(t *testing.T) {
	for _, mode := range remoteModes {
		t.Run(string(mode), func(t *testing.T) {
			f := newFixture(t, mode)
			fn := f.register(t, "noop", samples.Noop)
			f.startDispatcher(t)
			f.startWorker(t, "w1", 4)
			f.startWorker(t, "w2", 4)
			f.waitTerminal(t, f.submit(t, fn, make([][]byte, 8)), 30*time.Second) // warm: registered, module loaded

			before := cpuTime(t)
			time.Sleep(time.Second)
			if used := cpuTime(t) - before; used > 150*time.Millisecond {
				t.Errorf("idle second used %v of CPU", used)
			} else {
				t.Logf("idle second used %v of CPU", used)
			}

			var worst time.Duration
			for range 5 {
				start := time.Now()
				f.waitTerminalFast(t, f.submit(t, fn, [][]byte{nil})[0])
				worst = max(worst, time.Since(start))
				time.Sleep(100 * time.Millisecond)
			}
			if worst > 250*time.Millisecond {
				t.Errorf("an idle system took %v to run a task", worst)
			}
			t.Logf("slowest of 5 idle pick-ups: %v", worst)
		})
	}
}

// cpuTime is the CPU (user+system) this process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// waitTerminalFast polls one task every millisecond until it is terminal.
