// Command bench is the faas benchmark harness. It starts its own redis-server on a free
// loopback port (or uses -redis), and measures one of:
//
//	-mode local|pull|push   drain: submit -n noop tasks with no dispatcher running, then start
//	                        the dispatcher (and, for pull/push, -workers workers of -slots
//	                        each) and time until every task is terminal — the way asynq's
//	                        benchmark measures its drain. Reports tasks/s and Redis commands
//	                        per task (INFO stats, total_commands_processed).
//	                        With -curve, pull and push run with CURVE (a dispatcher key, one
//	                        key per worker on its allow-list), as across machines.
//	-mode rest              end to end over HTTP: a server and a local dispatcher in this
//	                        process, -c clients each submitting and waiting (?wait=) in a
//	                        loop for -n tasks; reports tasks/s and submit-to-result p50/p99.
//	-mode latency           one client, one task at a time: submit-to-result p50/p99.
//	-cluster N              start a Redis Cluster of N masters (even slot runs) instead of
//	                        one redis-server; INFO figures are summed over the masters.
//	                        Drains also report Redis CPU per task (INFO cpu, user + sys).
//	-keys                   rest/latency: the server requires an API key (namespace "bench",
//	                        with rate and task quotas set high enough never to refuse), so
//	                        that authentication and quota checks are on the measured path.
//
// Output is one line of key=value pairs on stdout (details on stderr).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"faas/dispatch"
	"faas/internal/testutil"
	"faas/internal/zsock"
	"faas/protocol"
	"faas/samples"
	"faas/sandbox"
	"faas/store"
	"faas/task"
	"faas/worker"
)

type options struct {
	mode     string
	n        int
	workers  int  // local: pool size; pull/push: worker processes (goroutine groups)
	slots    int  // pull/push: slots per worker
	queue    int  // pull/push: tasks each worker queues beyond its slots
	curve    bool // pull/push: CURVE on every socket
	conc     int  // rest: concurrent clients
	redisURL string
	cluster  int // masters of a Redis Cluster the harness starts (0: one node)
	shards   int // store.Config.Shards (0: the default)
	module   string
	keys     bool // rest/latency: API keys and quotas on
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "local", "local, pull, push, rest or latency")
	flag.IntVar(&o.n, "n", 20000, "tasks")
	flag.IntVar(&o.workers, "w", 2, "local: sandboxes in the pool; pull/push: number of workers")
	flag.IntVar(&o.slots, "slots", 2, "pull/push: slots per worker")
	flag.IntVar(&o.queue, "queue", 0, "pull/push: tasks each worker queues beyond its slots (faas worker --queue)")
	flag.BoolVar(&o.curve, "curve", false, "pull/push: CURVE keys on the dispatcher and every worker")
	flag.IntVar(&o.conc, "c", 64, "rest: concurrent clients")
	flag.StringVar(&o.redisURL, "redis", "", "Redis URL (default: start a redis-server on a free port)")
	flag.IntVar(&o.cluster, "cluster", 0, "start a Redis Cluster of this many masters instead of one redis-server")
	flag.IntVar(&o.shards, "shards", 0, "task shards (default: 16 on a cluster, 1 otherwise)")
	flag.StringVar(&o.module, "module", "noop", "sample to run: noop, double_wat, double_c, double_go, double_go_reactor, double_c_reactor, gomap_reactor, fib")
	flag.BoolVar(&o.keys, "keys", false, "rest/latency: require an API key and apply (never refusing) quotas")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(context.Background(), o, log); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	url := o.redisURL
	if url == "" && o.cluster > 0 {
		procs, u, err := startCluster(ctx, o.cluster)
		if err != nil {
			return err
		}
		defer func() {
			for _, p := range procs {
				p.stop()
			}
		}()
		url = u
	}
	if url == "" {
		srv, err := startRedis(ctx)
		if err != nil {
			return err
		}
		defer srv.stop()
		url = srv.url
	}
	rdb, err := store.Open(url)
	if err != nil {
		return err
	}
	rdb.AddHook(&trips)
	defer rdb.Close()
	if err := flushAll(ctx, rdb); err != nil {
		return fmt.Errorf("flush %s: %w", store.RedactURL(url), err)
	}
	st := store.New(rdb, store.Config{Shards: o.shards})
	sb, err := sandbox.New(ctx, sandbox.Config{})
	if err != nil {
		return err
	}
	defer sb.Close(ctx)

	wasm, input, err := pick(o.module)
	if err != nil {
		return err
	}
	info, err := sb.Validate(ctx, wasm, task.Limits{})
	if err != nil {
		return err
	}
	fn := store.Function{ID: uuid.NewString(), Name: o.module, ModuleHash: info.Hash, ABI: info.ABI,
		ModuleSize: int64(len(wasm)), Limits: task.DefaultLimits(), CreatedAt: time.Now()}
	if err := st.PutModule(ctx, info.Hash, wasm); err != nil {
		return err
	}
	if err := st.CreateFunction(ctx, fn); err != nil {
		return err
	}
	// One task outside the timing, in the sandbox local mode uses (Validate compiled the
	// module there already): a reactor's first task pre-initializes it. Remote workers have
	// sandboxes of their own and pay both in the drain.
	t0 := time.Now()
	if res, err := sb.Run(ctx, info.Hash, fn.Name, input, fn.Limits); err != nil || res.Failure != nil {
		return fmt.Errorf("warm-up task: %v %v", err, res.Failure)
	}
	fmt.Fprintf(os.Stderr, "warm-up task (abi %s) took %v\n", info.ABI, time.Since(t0).Round(time.Millisecond))

	switch o.mode {
	case "local", "pull", "push":
		return drain(ctx, o, rdb, st, sb, fn, input, log)
	case "rest", "latency":
		return rest(ctx, o, st, sb, fn, input, log)
	default:
		return fmt.Errorf("unknown -mode %q", o.mode)
	}
}

func pick(name string) (wasm, input []byte, err error) {
	switch name {
	case "noop":
		return samples.Noop, nil, nil
	case "double_wat":
		return samples.DoubleWAT, []byte("21"), nil
	case "double_c":
		return samples.DoubleC, []byte("21"), nil
	case "fib":
		return samples.Fib, []byte("20"), nil
	case "double_go":
		return samples.DoubleGo, []byte("21"), nil
	case "double_go_reactor":
		return samples.DoubleGoReactor, []byte("21"), nil
	case "double_c_reactor":
		return samples.DoubleCReactor, []byte("21"), nil
	case "gomap_reactor": // fills a map in every task: shows what 100,000 fresh instances leave
		return samples.ReactorGoMap, []byte("x"), nil
	}
	return nil, nil, fmt.Errorf("unknown -module %q", name)
}

// drain submits n tasks first, then times a dispatcher draining them.
func drain(ctx context.Context, o options, rdb redis.UniversalClient, st *store.Store, sb *sandbox.Sandbox,
	fn store.Function, input []byte, log *slog.Logger) error {
	ids := make([]string, 0, o.n)
	const chunk = 1000
	t0 := time.Now()
	for len(ids) < o.n {
		k := min(chunk, o.n-len(ids))
		inputs := make([][]byte, k)
		for i := range inputs {
			inputs[i] = input
		}
		got, err := st.Submit(ctx, fn, inputs)
		if err != nil {
			return err
		}
		ids = append(ids, got...)
	}
	fmt.Fprintf(os.Stderr, "submitted %d tasks in %v\n", o.n, time.Since(t0).Round(time.Millisecond))

	done := st.NewDone()
	dctx, stopDone := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = done.Run(dctx) }()
	defer func() { stopDone(); wg.Wait() }()
	select {
	case <-done.Ready():
	case <-time.After(10 * time.Second):
		return errors.New("no subscription to the done channel within 10s")
	}
	finished, stopWatch := done.Watch(ids)
	defer stopWatch()

	rssBefore := rssMiB("VmRSS")
	tripsBefore := trips.n.Load()
	before, err := commandsProcessed(ctx, rdb)
	if err != nil {
		return err
	}
	cpuBefore, err := redisCPU(ctx, rdb)
	if err != nil {
		return err
	}
	port := 0
	if o.mode != "local" {
		if port, err = testutil.Port(); err != nil {
			return err
		}
	}
	dcfg := dispatch.Config{Mode: protocol.Mode(o.mode), Workers: o.workers, Port: port}
	wkeys := make([]zsock.KeyPair, o.workers)
	if o.curve && o.mode != "local" {
		if dcfg.Key, err = zsock.NewKeyPair(); err != nil {
			return err
		}
		pubs := make([]string, o.workers)
		for i := range wkeys {
			if wkeys[i], err = zsock.NewKeyPair(); err != nil {
				return err
			}
			pubs[i] = wkeys[i].Public
		}
		dcfg.Authorized = zsock.NewAllowList(pubs)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, 1+o.workers)
	var running sync.WaitGroup
	start := time.Now()
	running.Add(1)
	go func() {
		defer running.Done()
		errs <- dispatch.Run(runCtx, st, sb, dcfg, log)
	}()
	if o.mode != "local" {
		for i := range o.workers {
			wsb, err := sandbox.New(ctx, sandbox.Config{})
			if err != nil {
				stop()
				return err
			}
			defer wsb.Close(ctx)
			running.Add(1)
			go func() {
				defer running.Done()
				wcfg := worker.Config{Mode: protocol.Mode(o.mode), Slots: o.slots, Queue: o.queue,
					Endpoint: fmt.Sprintf("tcp://127.0.0.1:%d", port), ID: fmt.Sprintf("bench-%d", i)}
				if !dcfg.Key.IsZero() {
					wcfg.Key, wcfg.DispatcherKey = wkeys[i], dcfg.Key.Public
				}
				errs <- worker.Run(runCtx, wsb, wcfg, log)
			}()
		}
	}
	// Done.Watch may repeat an id (after a re-subscription it wakes every watcher): count
	// each id once.
	seen := make(map[string]struct{}, o.n)
	timeout := time.After(5 * time.Minute)
	for len(seen) < o.n {
		select {
		case id := <-finished:
			seen[id] = struct{}{}
		case <-timeout:
			stop()
			running.Wait()
			return fmt.Errorf("timed out with %d of %d tasks finished", len(seen), o.n)
		}
	}
	elapsed := time.Since(start)
	after, err := commandsProcessed(ctx, rdb)
	if err != nil {
		return err
	}
	cpuAfter, err := redisCPU(ctx, rdb)
	if err != nil {
		return err
	}
	// The four INFO calls are not the drain's (on a cluster they go to the masters'
	// own clients, which the counter does not see: up to 4 in 20,000 too few).
	roundTrips := trips.n.Load() - tripsBefore - 4
	stop()
	running.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	if err := verify(ctx, st, ids); err != nil {
		return err
	}
	fmt.Printf("mode=%s curve=%t module=%s tasks=%d workers=%d slots=%d queue=%d masters=%d shards=%d seconds=%.3f tasks_per_sec=%.0f redis_round_trips_per_task=%.3f redis_cmds_per_task=%.2f redis_cpu_us_per_task=%.1f rss_before_mib=%.0f rss_after_mib=%.0f rss_peak_mib=%.0f\n",
		o.mode, !dcfg.Key.IsZero(), o.module, o.n, o.workers, o.slots, o.queue, max(o.cluster, 1), st.Config().Shards,
		elapsed.Seconds(), float64(o.n)/elapsed.Seconds(), float64(roundTrips)/float64(o.n),
		float64(after-before)/float64(o.n), (cpuAfter-cpuBefore)*1e6/float64(o.n), rssBefore, rssMiB("VmRSS"), rssMiB("VmHWM"))
	return nil
}

func verify(ctx context.Context, st *store.Store, ids []string) error {
	for i := 0; i < len(ids); i += 1000 {
		recs, err := st.Tasks(ctx, ids[i:min(i+1000, len(ids))])
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Status != task.Completed {
				return fmt.Errorf("task %s is %s, want COMPLETED (%+v)", r.ID, r.Status, r.Error)
			}
		}
	}
	return nil
}
