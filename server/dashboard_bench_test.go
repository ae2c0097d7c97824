package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"faas/samples"
	"faas/server"
	"faas/store"
	"faas/task"
)

// The dashboard with 1,000,000 finished task records in Redis (FAAS_BENCH_TASKS sets
// another count): the records and the history are written by the real paths (Submit,
// Claim, Complete) in batches of 10,000, 1% of the tasks failing, spread over 4 functions.
// Each benchmark then times one dashboard request over HTTP. Run with
//
//	go test -run '^$' -bench Dashboard -benchtime 200x ./server
//
// The load is shared by the benchmarks of one run and reports the Redis memory of the
// recent-task indexes and of the interval counters (index_MB, counters_MB), and of all
// of Redis (redis_MB).

var dash struct {
	once sync.Once
	e    *env
	fns  []string
	err  error
}

func dashboardEnv(b *testing.B) *env {
	dash.once.Do(func() { dash.e, dash.fns, dash.err = loadDashboard(b) })
	if dash.err != nil {
		b.Fatal(dash.err)
	}
	return dash.e
}

func loadDashboard(b *testing.B) (*env, []string, error) {
	n := 1_000_000
	if v := os.Getenv("FAAS_BENCH_TASKS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			return nil, nil, fmt.Errorf("FAAS_BENCH_TASKS=%q: %w", v, err)
		}
	}
	// A test env's cleanups belong to the first benchmark; the shared load outlives it, so
	// it gets an env of its own that is never cleaned up before the process ends.
	e := newEnv(&noCleanup{B: b}, server.Config{})
	ctx := context.Background()
	var fns []store.Function
	for i := range 4 {
		id := e.register(b, fmt.Sprintf("fn%d", i), samples.Noop, nil)
		f, err := e.st.FunctionIn(ctx, store.DefaultNamespace, id)
		if err != nil {
			return nil, nil, err
		}
		fns = append(fns, f)
	}
	start := time.Now()
	const batch = 10_000
	inputs := make([][]byte, batch)
	for i := range inputs {
		inputs[i] = []byte(strconv.Itoa(i))
	}
	for done := 0; done < n; done += batch {
		k := min(batch, n-done)
		if _, err := e.st.Submit(ctx, fns[(done/batch)%len(fns)], inputs[:k]); err != nil {
			return nil, nil, err
		}
		ts, err := e.st.Claim(ctx, "bench", k)
		if err != nil {
			return nil, nil, err
		}
		outs := make([]task.Outcome, len(ts))
		for i, t := range ts {
			outs[i] = task.Outcome{Ref: t.Ref(), Stdout: []byte("ok"), Duration: time.Duration(1+i%50) * time.Millisecond,
				Worker: "bench", CPUUnits: 1000}
			if i%100 == 0 {
				outs[i].Stdout = nil
				outs[i].Failure = &task.Failure{Kind: task.KindExit, Message: "exit code 2"}
				outs[i].Stderr = []byte("bad input")
			}
		}
		if _, err := e.st.Complete(ctx, outs); err != nil {
			return nil, nil, err
		}
	}
	b.Logf("loaded %d finished tasks in %v", n, time.Since(start).Round(time.Millisecond))
	ids := make([]string, len(fns))
	for i, f := range fns {
		ids[i] = f.ID
	}
	return e, ids, nil
}

// noCleanup is a testing.B whose Cleanup does nothing: the shared load lives until exit.
type noCleanup struct{ *testing.B }

func (noCleanup) Cleanup(func()) {}

// memoryMB sums MEMORY USAGE of the keys matching pattern.
func memoryMB(b *testing.B, e *env, pattern string) float64 {
	c := e.redis.Client(b)
	ctx := context.Background()
	var total int64
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		n, err := c.MemoryUsage(ctx, iter.Val()).Result()
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	if err := iter.Err(); err != nil {
		b.Fatal(err)
	}
	return float64(total) / (1 << 20)
}

func reportMemory(b *testing.B, e *env) {
	p := e.st.Config().Prefix
	b.ReportMetric(memoryMB(b, e, p+"recent:*")+memoryMB(b, e, p+"frecent:*"), "index_MB")
	b.ReportMetric(memoryMB(b, e, p+"hist:*")+memoryMB(b, e, p+"fhist:*")+memoryMB(b, e, p+"totals:*"), "counters_MB")
	info, err := e.redis.Client(b).InfoMap(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	used, _ := strconv.ParseFloat(info["Memory"]["used_memory"], 64)
	b.ReportMetric(used/(1<<20), "redis_MB")
}

func benchGet(b *testing.B, path string, check string) {
	e := dashboardEnv(b)
	if strings.Contains(path, "FN") {
		path = strings.ReplaceAll(path, "FN", dash.fns[1])
	}
	get := func() string {
		resp, err := http.Get(e.url + path)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	if body := get(); !strings.Contains(body, check) {
		b.Fatalf("GET %s: %.300s does not hold %s", path, body, check)
	}
	b.ResetTimer()
	for range b.N {
		get()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
	reportMemory(b, e)
}

func BenchmarkDashboardOverview(b *testing.B) {
	benchGet(b, "/stats/overview", `"completed":`)
}

func BenchmarkDashboardFunctions(b *testing.B) {
	benchGet(b, "/stats/functions", `"tasks_last_hour":`)
}

func BenchmarkDashboardTasksFailedOfFunction(b *testing.B) {
	benchGet(b, "/tasks?status=FAILED&function=FN&limit=50", `"status":"FAILED"`)
}

func BenchmarkDashboardTasksOfFunction(b *testing.B) {
	benchGet(b, "/tasks?function=FN&limit=50", `"status":"COMPLETED"`)
}

func BenchmarkDashboardTasksFailed(b *testing.B) {
	benchGet(b, "/tasks?status=FAILED&limit=50", `"status":"FAILED"`)
}

// BenchmarkDashboardTasksDeepPage reads a page 5,000 tasks deep into one completed batch
// (its 10,000 tasks share one finish time, so the cursor is an offset within it).
func BenchmarkDashboardTasksDeepPage(b *testing.B) {
	e := dashboardEnv(b)
	resp, err := http.Get(e.url + "/tasks?limit=1&function=" + dash.fns[1])
	if err != nil {
		b.Fatal(err)
	}
	var first struct {
		Tasks []struct {
			FinishedAt time.Time `json:"finished_at"`
		} `json:"tasks"`
	}
	err = json.NewDecoder(resp.Body).Decode(&first)
	resp.Body.Close()
	if err != nil || len(first.Tasks) != 1 {
		b.Fatalf("first page: %v %+v", err, first)
	}
	ms := first.Tasks[0].FinishedAt.UnixMilli()
	benchGet(b, fmt.Sprintf("/tasks?function=FN&limit=50&cursor=%d_5000", ms), `"next_cursor":"`+strconv.FormatInt(ms, 10)+`_5050"`)
}
