package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"faas/internal/redistest"
	"faas/internal/testutil"
	"faas/samples"
	"faas/store"
	"faas/task"
)

// TestSentinelFailover: a Sentinel set on loopback (primary, replica, three Sentinels) and a
// local dispatcher reaching it with a redis+sentinel:// URL. The primary is SIGKILLed while
// 2,000 tasks are being submitted and run; Sentinel promotes the replica, and the
// dispatcher and the submitter carry on without restart. Every acknowledged task ends
// COMPLETED or, if its submission never reached the replica, lost; both counts, and the
// tasks that ran twice because their completion was not replicated, are logged (see
// docs/RATIONALE.md, "Redis topologies and failover", for what asynchronous replication
// allows).
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
	t.Parallel()
	sentinelFailover(t, 0)
}

// TestSentinelFailoverWaited is TestSentinelFailover with the submitter, the server and the
// dispatcher waiting for the replica after their writes (--redis-wait-replicas 1): every
// acknowledged task is on the replica Sentinel promotes, so none may be lost. After the
// failover no replica is left: writes wait out their timeout (200 ms here) and are
// acknowledged anyway (logged).
func TestSentinelFailoverWaited(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
	t.Parallel()
	sentinelFailover(t, 1)
}

func sentinelFailover(t *testing.T, wait int) {
	const master, total, batch, ms = "faas-master", 2000, 50, 20
	primary := redistest.Start(t)
	_, pport, _ := strings.Cut(primary.Addr, ":")
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", pport)
	rc := replica.Client(t)
	testutil.WaitFor(t, 15*time.Second, "the replica in sync", func() bool {
		info, err := rc.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	sentinels := redistest.StartSentinels(t, master, primary, 3)
	addrs := make([]string, len(sentinels))
	for i, s := range sentinels {
		addrs[i] = s.Addr
	}
	url := "redis+sentinel://" + strings.Join(addrs, ",") + "/" + master + "/0"

	// After the failover no replica is left: writes wait until the timeout, kept short so
	// that the run stays short.
	p := platformWith(t, url, store.Config{WaitReplicas: wait, WaitTimeout: 200 * time.Millisecond})
	ctx, st, fn := context.Background(), p.st, p.fn
	waitFlag := []string{"--redis-wait-replicas", strconv.Itoa(wait), "--redis-wait-timeout", "200ms"}
	d := startProc(t, "dispatcher", append([]string{"dispatcher", "-m", "local", "-w", "16", "--redis", url, "--lease", testLease}, waitFlag...)...)
	// A server on the same URL: it answers 503 while there is no primary, then recovers
	// without a restart.
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	sp := startProc(t, "server", append([]string{"server", "--addr", addr, "--redis", url}, waitFlag...)...)
	sc := waitHealthy(t, sp, addr)

	// The submitter retries a batch whose answer was an error (during the switch): only
	// the ids of acknowledged batches are the run's.
	var mu sync.Mutex
	var acked []string
	retried := 0
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		inputs := make([][]byte, batch)
		for i := range inputs {
			inputs[i] = []byte(strconv.Itoa(ms))
		}
		for sent := 0; sent < total; {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ids, err := st.Submit(sctx, fn, inputs)
			cancel()
			if err != nil {
				retried++
				time.Sleep(100 * time.Millisecond)
				continue
			}
			mu.Lock()
			acked = append(acked, ids...)
			mu.Unlock()
			sent += len(ids)
			// Spread over about 4 s, so that the kill falls mid-submission.
			time.Sleep(100 * time.Millisecond)
		}
	}()
	ackedNow := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), acked...)
	}

	testutil.WaitFor(t, 30*time.Second, "500 tasks terminal", func() bool {
		rs, err := p.records(ackedNow())
		return err == nil && countTerminal(rs) >= 500
	})
	beforeKill, _ := p.records(ackedNow())
	// The server's /healthz, every 50 ms from the kill until it is answered 200 again after
	// the promotion: the codes it gave.
	codes := map[int]int{}
	var probes sync.WaitGroup
	probing, stopProbing := context.WithCancel(ctx)
	defer stopProbing()
	probes.Add(1)
	go func() {
		defer probes.Done()
		hc := &http.Client{Timeout: 2 * time.Second}
		for probing.Err() == nil {
			code := 0 // no answer within 2 s
			if resp, err := hc.Get("http://" + addr + "/healthz"); err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	primary.Kill()
	killed := time.Now()
	testutil.WaitForProgress(t, 20*time.Second, "Sentinel promotes the replica", func() (bool, string) {
		m, err := sentinels[0].Master(ctx, master)
		return err == nil && m == replica.Addr, fmt.Sprint(m, err)
	})
	promoted := time.Since(killed)
	testutil.WaitForProgress(t, 20*time.Second, "the server registers a function after the failover", func() (bool, string) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := sc.Register(rctx, "after-failover", samples.Echo, nil)
		return err == nil, fmt.Sprint(err)
	})
	stopProbing()
	probes.Wait()
	mu.Lock()
	t.Logf("the server's /healthz from the kill to its recovery: %v (status: count; 0 is no answer)", codes)
	for code := range codes {
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Errorf("/healthz answered %d during the failover; want 200 or 503 only (codes %v)", code, codes)
		}
	}
	if codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("/healthz never answered 503 while there was no primary (codes %v)", codes)
	}
	mu.Unlock()
	if sp.done() {
		t.Fatalf("the server exited during the failover: %v", sp.err)
	}
	<-submitted

	ids := ackedNow()
	var rs []store.Record
	testutil.WaitForProgress(t, 40*time.Second, "every acknowledged task terminal or lost", func() (bool, string) {
		var err error
		if rs, err = p.records(ids); err != nil {
			return false, err.Error()
		}
		return countTerminal(rs)+len(missingOf(rs)) == len(ids), fmt.Sprint(tally(rs))
	})
	if d.done() {
		t.Fatalf("the dispatcher exited during the failover: %v", d.err)
	}
	lost := missingOf(rs)
	if wait > 0 && len(lost) > 0 {
		t.Errorf("%d acknowledged tasks lost although every write waited for the replica", len(lost))
	}
	twice := 0
	for _, r := range rs {
		if r.Status == "" {
			continue
		}
		if r.Status != task.Completed || !strings.HasPrefix(string(r.Result), "slept ") {
			t.Errorf("task %s: %s %+v; want COMPLETED", r.ID, r.Status, r.Error)
		}
		if r.Attempts > 1 {
			twice++
		}
	}
	if n := countTerminal(rs); n <= countTerminal(beforeKill) {
		t.Fatalf("no task completed after the failover: %d terminal before the kill, %d after", countTerminal(beforeKill), n)
	}
	if len(ids) < total {
		t.Fatalf("%d tasks acknowledged; want %d", len(ids), total)
	}
	// A batch whose answer was lost may still have been applied: its tasks run, unknown
	// to the submitter (the client's retry doubles them), and are counted here.
	keys, err := rc.Keys(ctx, "faas:task:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sentinel failover: %d acknowledged (%d batches retried), %d terminal at the kill, replica promoted %v after it; "+
		"%d lost (acknowledged, never replicated), %d ran twice (completion not replicated), %d unacknowledged but stored",
		len(ids), retried, countTerminal(beforeKill), promoted.Round(time.Millisecond), len(lost), twice, len(keys)-(len(ids)-len(lost)))
}

func countTerminal(rs []store.Record) int {
	n := 0
	for _, r := range rs {
		if terminal(r.Status) {
			n++
		}
	}
	return n
}

func missingOf(rs []store.Record) []string {
	var out []string
	for _, r := range rs {
		if r.Status == "" {
			out = append(out, r.ID)
		}
	}
	return out
}
