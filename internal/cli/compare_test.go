package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"faas/client"
	"faas/internal/cli/batch"
	"faas/samples"
)

// TestBatchVsSingle measures, in one sitting, tasks/s submitted and completed through
// single submissions (POST /execute_function, 8 at once) and through the batch path
// (POST /execute_batch in chunks of 500; then faas batch's whole pipeline). Not run by
// default:
//
//	FAAS_BATCH_COMPARE=10000 go test -count=1 -run TestBatchVsSingle -v ./internal/cli/
func TestBatchVsSingle(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FAAS_BATCH_COMPARE"))
	if n <= 0 {
		t.Skip("set FAAS_BATCH_COMPARE=<number of tasks> to compare batch and single submissions")
	}
	url := startPlatform(t)
	out, _ := cliOK(t, url, "", 0, "register", "double", writeFile(t, "double.wasm", samples.DoubleWAT))
	fn := strings.TrimSpace(out)
	c := client.New(url)
	ctx := context.Background()
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = []byte(strconv.Itoa(i))
	}
	// waitAll waits until every id is terminal, asking about 1000 at a time.
	waitAll := func(ids []string) {
		for len(ids) > 0 {
			head := ids[:min(len(ids), 1000)]
			done, err := c.Wait(ctx, head, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			fin := map[string]bool{}
			for _, d := range done {
				fin[d.TaskID] = true
			}
			rest := ids[:0]
			for _, id := range ids {
				if !fin[id] {
					rest = append(rest, id)
				}
			}
			ids = rest
		}
	}
	report := func(what string, start, submitted, completed time.Time) {
		t.Logf("%-40s submitted %6.0f tasks/s, completed %6.0f tasks/s", what,
			float64(n)/submitted.Sub(start).Seconds(), float64(n)/completed.Sub(start).Seconds())
	}

	{
		start := time.Now()
		ids := make([]string, n)
		var wg sync.WaitGroup
		next := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					id, err := c.Execute(ctx, fn, inputs[i])
					if err != nil {
						t.Error(err)
						return
					}
					ids[i] = id
				}
			}()
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		submitted := time.Now()
		waitAll(ids)
		report("single (/execute_function x8)", start, submitted, time.Now())
	}
	{
		start := time.Now()
		var ids []string
		for i := 0; i < n; i += 500 {
			got, err := c.ExecuteBatch(ctx, fn, inputs[i:min(n, i+500)])
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, got...)
		}
		submitted := time.Now()
		waitAll(ids)
		report("batch (/execute_batch, chunks of 500)", start, submitted, time.Now())
	}
	{
		var in strings.Builder
		for i := range n {
			fmt.Fprintln(&in, i)
		}
		start := time.Now()
		sum, err := batch.Run(ctx, c, fn, strings.NewReader(in.String()), io.Discard, batch.Config{})
		if err != nil || sum.Completed != n {
			t.Fatalf("%+v %v", sum, err)
		}
		t.Logf("%-40s end to end (in order)  %6.0f tasks/s", "faas batch (window 4096)", float64(n)/time.Since(start).Seconds())
	}
}
