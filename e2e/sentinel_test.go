package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"faas/internal/redistest"
	"faas/internal/testutil"
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

	p := platformOn(t, url)
	ctx, st, fn := context.Background(), p.st, p.fn
	d := startProc(t, "dispatcher", "dispatcher", "-m", "local", "-w", "16", "--redis", url, "--lease", testLease)

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
	primary.Kill()
	killed := time.Now()
	testutil.WaitForProgress(t, 20*time.Second, "Sentinel promotes the replica", func() (bool, string) {
		m, err := sentinels[0].Master(ctx, master)
		return err == nil && m == replica.Addr, fmt.Sprint(m, err)
	})
	promoted := time.Since(killed)
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
