package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"faas/client"
	"faas/samples"
	"faas/task"
)

// TestSoak runs the platform (server, push dispatcher, one worker) under a steady load of
// good tasks beside a trickle of the attacks of issue 11, and samples each process's RSS
// every 10 s. It is a measurement, not run by default:
//
//	FAAS_SOAK=30m FAAS_SOAK_OUT=/tmp/soak go test -count=1 -timeout 40m -run TestSoak -v ./e2e
//
// It writes rss.csv and rss.svg to FAAS_SOAK_OUT (docs/BENCHMARKS.md shows them), and fails
// if a process died or restarted, a good task was lost or wrong, or an attack got anything
// but its documented answer.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("FAAS_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set FAAS_SOAK=<duration> (e.g. 30m) to run the soak")
	}
	out := os.Getenv("FAAS_SOAK_OUT")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	p := newPlatform(t)
	dp, endpoint := p.dispatcher("dispatcher", "push")
	wp := p.worker("worker", "push", 4, endpoint)
	sp, c, addr := p.serverAt("server", "--max-inflight-body-bytes", strconv.Itoa(64*mib))
	procs := []*proc{sp, dp, wp}
	pids := []int{sp.pid(), dp.pid(), wp.pid()}

	double := register(t, c, "double_c", samples.DoubleC, nil)
	echo := register(t, c, "echo", samples.Echo, &client.Limits{StdoutBytes: 8 * mib, StdinBytes: 8 * mib})
	hostile := map[string]string{}
	for _, name := range []string{"infinite_loop", "call_tree", "memory_bomb", "deep_recursion", "huge_output", "table_grow_max"} {
		// 1 s: the loops must reach their deadline, the others end long before it (the
		// first run of each compiles it on the worker, which a loaded machine made slow).
		hostile[name] = register(t, c, name, samples.Hostile[name], &client.Limits{TimeoutMs: 1000})
	}
	randomBomb := register(t, c, "random_bomb", samples.RandomBomb, &client.Limits{MemoryMB: 1024, TimeoutMs: 200})

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu      sync.Mutex
		good    int // good tasks completed with the right result
		attacks = map[string]int{}
		wg      sync.WaitGroup
		failed  error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if failed == nil {
			failed = err
			cancel()
		}
	}

	// Good load: batches of 20 `double` tasks, waited for, checked one by one.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			inputs := make([][]byte, 20)
			for j := range inputs {
				inputs[j] = []byte(strconv.Itoa(i*20 + j))
			}
			n, err := runAndCheck(c, double, inputs, func(j int, tk client.Task) error {
				if want := strconv.Itoa(2 * (i*20 + j)); tk.Status != client.StatusCompleted || string(tk.Result) != want {
					return fmt.Errorf("good task %s: %s %q %v, want COMPLETED %s", tk.TaskID, tk.Status, tk.Result, tk.Error, want)
				}
				return nil
			})
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			good += n
			mu.Unlock()
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}()

	// Attacks: one every 2 s, in turn.
	kinds := map[string]task.Kind{"infinite_loop": task.KindTimeout, "call_tree": task.KindTimeout,
		"memory_bomb": task.KindOutOfMemory, "deep_recursion": task.KindTrap,
		"huge_output": task.KindOutputTooLarge, "table_grow_max": task.KindOutOfMemory}
	attack := []struct {
		name string
		run  func() error
	}{
		{"hostile tasks", func() error {
			for name, fn := range hostile {
				if _, err := runAndCheck(c, fn, [][]byte{nil}, wantKind(kinds[name])); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			return nil
		}},
		{"random_get of 1 GiB", func() error {
			_, err := runAndCheck(c, randomBomb, [][]byte{nil}, wantKind(task.KindTimeout))
			return err
		}},
		{"module bombs", func() error {
			for name, wasm := range map[string][]byte{"locals": localsBomb(), "nesting": nestingBomb(100_000)} {
				_, err := c.Register(context.Background(), "bomb", wasm, nil)
				var ae *client.APIError
				if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Code != "invalid_module" {
					return fmt.Errorf("%s bomb: %v, want 400 invalid_module", name, err)
				}
			}
			return nil
		}},
		{"stalled uploads", func() error {
			for range 4 {
				resp, _, conn, err := stalledUpload(addr, 16*mib)
				if conn != nil {
					conn.Close()
				}
				if err != nil {
					return err
				}
				if resp != nil && resp.StatusCode != 503 {
					return fmt.Errorf("stalled upload answered %d, want 503 or no answer", resp.StatusCode)
				}
			}
			return nil
		}},
		{"large results", func() error {
			big := bytes.Repeat([]byte("x"), 4*mib)
			_, err := runAndCheck(c, echo, [][]byte{big, big, big, big}, func(_ int, tk client.Task) error {
				if tk.Status != client.StatusCompleted || len(tk.Result) != len(big) {
					return fmt.Errorf("echo of 4 MiB: %s, %d bytes", tk.Status, len(tk.Result))
				}
				return nil
			})
			return err
		}},
		{"junk frames", func() error { return junkFrames(endpoint) }},
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			a := attack[i%len(attack)]
			if err := a.run(); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("attack %q: %w", a.name, err))
				return
			}
			mu.Lock()
			attacks[a.name]++
			mu.Unlock()
			sleepCtx(ctx, 2*time.Second)
		}
	}()

	// RSS every 10 s.
	csv := &strings.Builder{}
	csv.WriteString("seconds,server_mib,dispatcher_mib,worker_mib\n")
	var samples [][3]float64
	start := time.Now()
	sample := func() {
		var row [3]float64
		fmt.Fprintf(csv, "%.0f", time.Since(start).Seconds())
		for i, pid := range pids {
			row[i] = float64(rss(t, pid)) / mib
			fmt.Fprintf(csv, ",%.1f", row[i])
		}
		csv.WriteString("\n")
		samples = append(samples, row)
	}
	sample()
	tick := time.NewTicker(10 * time.Second)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			sample()
			for _, pr := range procs {
				if pr.done() {
					fail(fmt.Errorf("%s died: %v", pr.name, pr.err))
				}
			}
		}
	}
	tick.Stop()
	wg.Wait()
	sample()
	if err := os.WriteFile(filepath.Join(out, "rss.csv"), []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "rss.svg"), []byte(rssSVG(samples, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	if failed != nil && !errors.Is(failed, context.DeadlineExceeded) {
		t.Fatal(failed)
	}
	for i, pr := range procs {
		if pr.done() || pr.pid() != pids[i] {
			t.Fatalf("%s died or restarted", pr.name)
		}
	}
	t.Logf("soak of %v: %d good tasks completed, attacks %v; RSS samples in %s", d, good, attacks, out)
	names := []string{"server", "dispatcher", "worker"}
	for i, name := range names {
		lo, hi := math.Inf(1), 0.0
		for _, s := range samples {
			lo, hi = min(lo, s[i]), max(hi, s[i])
		}
		t.Logf("%s RSS: first %.0f MiB, last %.0f MiB, min %.0f, max %.0f", name, samples[0][i], samples[len(samples)-1][i], lo, hi)
	}
}

// runAndCheck submits inputs to fn, waits until every task is terminal (at most 2 min) and
// checks each with check; it returns how many there were.
func runAndCheck(c *client.Client, fn string, inputs [][]byte, check func(int, client.Task) error) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids, err := c.ExecuteBatch(ctx, fn, inputs)
	for err != nil {
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.StatusCode != 503 {
			return 0, fmt.Errorf("submit: %w", err)
		}
		sleepCtx(ctx, max(ae.RetryAfter, 100*time.Millisecond)) // the server is full for now
		if ctx.Err() != nil {
			return 0, fmt.Errorf("submit: %w", ctx.Err())
		}
		ids, err = c.ExecuteBatch(ctx, fn, inputs)
	}
	if err := waitChecked(ctx, c, ids, check); err != nil {
		return 0, err
	}
	return len(ids), nil
}

// waitChecked waits until every task of ids is terminal and checks each with check (given
// its index in ids).
func waitChecked(ctx context.Context, c *client.Client, ids []string, check func(int, client.Task) error) error {
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}
	pending := ids
	for len(pending) > 0 {
		ts, err := c.Wait(ctx, pending, 5*time.Second)
		if err != nil {
			return fmt.Errorf("wait: %w (%d tasks not terminal: lost?)", err, len(pending))
		}
		done := map[string]bool{}
		for _, tk := range ts {
			if err := check(index[tk.TaskID], tk); err != nil {
				return err
			}
			done[tk.TaskID] = true
		}
		rest := pending[:0:0]
		for _, id := range pending {
			if !done[id] {
				rest = append(rest, id)
			}
		}
		pending = rest
	}
	return nil
}

func wantKind(k task.Kind) func(int, client.Task) error {
	return func(_ int, tk client.Task) error {
		if tk.Status != client.StatusFailed || tk.Error == nil || tk.Error.Kind != k {
			return fmt.Errorf("task %s: %s %v, want FAILED %s", tk.TaskID, tk.Status, tk.Error, k)
		}
		return nil
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// rss is a process's resident set (VmRSS) in bytes.
func rss(tb testing.TB, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatalf("pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// localsBomb is a 41-byte module whose one function declares 2^27 locals.
func localsBomb() []byte {
	return []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type: () -> ()
		"\x03\x02\x01\x00" + // one function of type 0
		"\x07\x0a\x01\x06_start\x00\x00" + // export _start
		"\x0a\x09\x01\x07\x01\x80\x80\x80\x40\x7f\x0b") // body: 2^27 i32 locals, end
}

// nestingBomb is a module whose _start nests depth empty blocks.
func nestingBomb(depth int) []byte {
	body := []byte{0} // no locals
	body = append(body, bytes.Repeat([]byte{0x02, 0x40}, depth)...)
	body = append(body, bytes.Repeat([]byte{0x0b}, depth+1)...)
	code := append(uleb(1), append(uleb(len(body)), body...)...)
	m := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x07\x0a\x01\x06_start\x00\x00")
	m = append(m, 0x0a)
	m = append(m, uleb(len(code))...)
	return append(m, code...)
}

func uleb(v int) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

// junkFrames sends malformed messages to the dispatcher's worker port from a fresh DEALER.
func junkFrames(endpoint string) error {
	s, err := zmq.NewSocket(zmq.DEALER)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetLinger(0)
	if err := s.Connect(endpoint); err != nil {
		return err
	}
	for _, frames := range [][][]byte{
		{{}}, {{}, {9}}, {{}, {1}, {200}}, {{}, {1}, {3}, []byte("x")}, {[]byte("no delimiter")},
		{{}, bytes.Repeat([]byte{0xff}, 1<<20)},
	} {
		parts := make([]any, len(frames))
		for i, f := range frames {
			parts[i] = f
		}
		if _, err := s.SendMessageDontwait(parts...); err != nil && zmq.AsErrno(err) != zmq.Errno(11) {
			return err
		}
	}
	time.Sleep(100 * time.Millisecond) // let them leave before the socket closes (LINGER 0)
	return nil
}

// rssSVG draws the three RSS series (MiB against minutes), one sample every every seconds.
func rssSVG(samples [][3]float64, every int) string {
	const w, h, left, bottom = 720, 300, 50, 30
	top := 10.0
	for _, s := range samples {
		top = max(top, s[0], s[1], s[2])
	}
	top = math.Ceil(top/50) * 50
	n := max(len(samples)-1, 1)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	for y := 0.0; y <= top; y += top / 5 {
		py := float64(h-bottom) - y/top*float64(h-bottom-10)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="4" y="%.1f">%.0f MiB</text>`+"\n", left, py, w-10, py, py+4, y)
	}
	minutes := float64(n*every) / 60
	for m := 0.0; m <= minutes; m += math.Max(1, math.Round(minutes/6)) {
		px := float64(left) + m/minutes*float64(w-left-10)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.0f min</text>`+"\n", px-10, h-10, m)
	}
	for i, col := range []string{"#1f77b4", "#d62728", "#2ca02c"} {
		b.WriteString(`<polyline fill="none" stroke-width="1.5" stroke="` + col + `" points="`)
		for j, s := range samples {
			px := float64(left) + float64(j)/float64(n)*float64(w-left-10)
			py := float64(h-bottom) - s[i]/top*float64(h-bottom-10)
			fmt.Fprintf(&b, "%.1f,%.1f ", px, py)
		}
		b.WriteString(`"/>` + "\n")
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", w-120, 20+15*i, col, []string{"server", "dispatcher", "worker"}[i])
	}
	b.WriteString("</svg>\n")
	return b.String()
}
