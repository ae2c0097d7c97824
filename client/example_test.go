package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"time"

	"faas/client"
	"faas/dispatch"
	"faas/samples"
)

// serverURL is a faas server (with a local dispatcher, on a real redis-server) started by
// TestMain for the examples; see main_test.go.
var serverURL string

// Register a function, run it, and wait for its result.
func Example() {
	ctx := context.Background()
	c := client.New(serverURL)

	fnID, err := c.Register(ctx, "double", samples.DoubleWAT, nil)
	if err != nil {
		fmt.Println("register:", err)
		return
	}
	taskID, err := c.Execute(ctx, fnID, []byte("21"))
	if err != nil {
		fmt.Println("execute:", err)
		return
	}
	t, err := c.Result(ctx, taskID, 10*time.Second)
	if err != nil {
		fmt.Println("result:", err)
		return
	}
	fmt.Println(t.Status, string(t.Result))
	// Output: COMPLETED 42
}

// A task that fails is still a 200 answer: its Error says why.
func ExampleClient_Result_failed() {
	ctx := context.Background()
	c := client.New(serverURL)

	fnID, _ := c.Register(ctx, "double", samples.DoubleWAT, nil)
	taskID, _ := c.Execute(ctx, fnID, []byte("not a number"))
	t, err := c.Result(ctx, taskID, 10*time.Second)
	if err != nil {
		fmt.Println("result:", err)
		return
	}
	fmt.Println(t.Status, t.Error.Kind)
	// Output: FAILED exit
}

// Submit many inputs in one request, then collect results as they finish.
func ExampleClient_ExecuteBatch() {
	ctx := context.Background()
	c := client.New(serverURL)

	fnID, _ := c.Register(ctx, "double", samples.DoubleWAT, nil)
	ids, err := c.ExecuteBatch(ctx, fnID, [][]byte{[]byte("1"), []byte("2"), []byte("3")})
	if err != nil {
		fmt.Println("batch:", err)
		return
	}
	results := map[string]string{}
	pending := ids
	for len(pending) > 0 {
		done, err := c.Wait(ctx, pending, 10*time.Second)
		if err != nil {
			fmt.Println("wait:", err)
			return
		}
		for _, t := range done {
			results[t.TaskID] = string(t.Result)
		}
		var still []string
		for _, id := range pending {
			if _, ok := results[id]; !ok {
				still = append(still, id)
			}
		}
		pending = still
	}
	for _, id := range ids {
		fmt.Println(results[id])
	}
	// Output:
	// 2
	// 4
	// 6
}

// Look a function up by name: the newest registration of a name wins.
func ExampleClient_Function() {
	ctx := context.Background()
	c := client.New(serverURL)

	_, _ = c.Register(ctx, "greeter", samples.Noop, nil)
	newest, _ := c.Register(ctx, "greeter", samples.Echo, &client.Limits{TimeoutMs: 2000})
	f, err := c.Function(ctx, "greeter")
	if err != nil {
		fmt.Println("function:", err)
		return
	}
	fmt.Println(f.ID == newest, f.Name, f.Limits.TimeoutMs, f.Limits.MemoryMB)

	fns, _ := c.Functions(ctx)
	var names []string
	for _, f := range fns {
		if f.Name == "greeter" {
			names = append(names, f.Name)
		}
	}
	sort.Strings(names)
	fmt.Println(names)
	// Output:
	// true greeter 2000 64
	// [greeter greeter]
}

// Every refusal of the server is an *APIError with a stable code.
func ExampleAPIError() {
	ctx := context.Background()
	c := client.New(serverURL)

	_, err := c.Register(ctx, "broken", []byte("this is not wasm"), nil)
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Code)
	}
	_, err = c.Status(ctx, "00000000-0000-0000-0000-000000000000")
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Code)
	}
	// Output:
	// 400 invalid_module
	// 404 not_found
}

// A server that cannot be reached is ErrUnreachable (the CLI's exit code 3).
func ExampleErrUnreachable() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	err := client.New("http://" + addr).Health(context.Background())
	fmt.Println(errors.Is(err, client.ErrUnreachable))
	// Output: true
}

// startDispatcher runs a local dispatcher for the examples.
var startDispatcher = func(ctx context.Context, env *exampleEnv) {
	go func() {
		err := dispatch.Run(ctx, env.st, env.sb, dispatch.Config{Mode: "local", Workers: 2, Owner: "examples"},
			slog.New(slog.DiscardHandler))
		if err != nil {
			fmt.Fprintln(os.Stderr, "dispatcher:", err)
		}
	}()
}

// Cancel a task, queued or running: it ends FAILED with kind cancelled at once. A task that
// ended already is a conflict; CancelMany answers per id.
func ExampleClient_Cancel() {
	ctx := context.Background()
	c := client.New(serverURL)

	fnID, _ := c.Register(ctx, "sleep", samples.Sleep, nil)
	taskID, _ := c.Execute(ctx, fnID, []byte("5000"))
	if _, err := c.Cancel(ctx, taskID); err != nil {
		fmt.Println("cancel:", err)
		return
	}
	t, _ := c.Result(ctx, taskID, 0)
	fmt.Println(t.Status, t.Error.Kind)

	_, err := c.Cancel(ctx, taskID)
	var ae *client.APIError
	if errors.As(err, &ae) {
		fmt.Println(ae.Code, ae.StatusCode)
	}

	got, _ := c.CancelMany(ctx, []string{taskID, "00000000-0000-0000-0000-000000000000"})
	for _, r := range got {
		fmt.Println(r.TaskID == taskID, r.Status, r.Err.Code)
	}
	// Output:
	// FAILED cancelled
	// conflict 409
	// true FAILED conflict
	// false  not_found
}
