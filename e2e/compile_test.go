package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"faas/client"
	"faas/internal/testutil"
	"faas/samples"
	"faas/store"

	"github.com/google/uuid"
)

// startDevWith runs `faas dev` with extra flags and returns it with a client.
func startDevWith(tb testing.TB, extra ...string) (*proc, *client.Client) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("e2e: tests on real processes are skipped with -short")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(tb))
	p := startProc(tb, "dev", append([]string{"dev", "--addr", addr, "-w", "1"}, extra...)...)
	return p, waitHealthy(tb, p, addr)
}

// refused registers wasm and checks it is refused with 400 invalid_module naming want.
func refused(tb testing.TB, c *client.Client, name string, wasm []byte, want string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Register(ctx, name, wasm, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Code != "invalid_module" {
		tb.Fatalf("registering %s: want 400 invalid_module, got %v", name, err)
	}
	if !strings.Contains(ae.Error(), want) {
		tb.Fatalf("registering %s: the refusal %q does not name %q", name, ae.Error(), want)
	}
	tb.Logf("%s refused after %v: %v", name, time.Since(start).Round(time.Millisecond), ae)
}

// The child that compiles a module runs out of its --compile-memory: the module is refused
// naming the limit, the server lives on and a small module still registers and runs.
func TestAttackCompileMemory(t *testing.T) {
	p, c := startDevWith(t, "--compile-memory", "256MiB")
	refused(t, c, "wide", testutil.WideCompile(2_000_000), "--compile-memory")
	fn := register(t, c, "canary", samples.DoubleWAT, nil)
	canary(t, c, fn)
	survived(t, p, c, 512*mib)
}

// A module whose compilation outlasts --compile-timeout is refused naming the limit; two at
// once queue behind one child at a time, and the server answers meanwhile.
func TestAttackCompileTimeout(t *testing.T) {
	p, c := startDevWith(t, "--compile-timeout", "1s")
	errs := make(chan string, 2)
	for i := range 2 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			_, err := c.Register(ctx, "slow"+strconv.Itoa(i), testutil.SlowCompile(6, byte(i)), nil)
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Code != "invalid_module" || !strings.Contains(ae.Error(), "--compile-timeout") {
				errs <- fmt.Sprintf("slow%d: want invalid_module naming --compile-timeout, got %v", i, err)
				return
			}
			errs <- ""
		}()
	}
	fn := register(t, c, "canary", samples.DoubleWAT, nil)
	canary(t, c, fn)
	for range 2 {
		if e := <-errs; e != "" {
			t.Fatal(e)
		}
	}
	survived(t, p, c, 512*mib)
}

// A worker whose child cannot compile a module fails that module's task once, as internal
// naming the limit (no attempt is retried, the worker lives), and runs the next function.
func TestWorkerCompileRefusal(t *testing.T) {
	p := newPlatform(t)
	_, c := p.server("server")
	_, endpoint := p.dispatcher("dispatcher", "pull")
	w := startProc(t, "worker", "worker", "pull", "1", endpoint, "--heartbeat", testHeartbeat,
		"--compile-memory", "256MiB")
	// Stored directly, as if registered: through the server its child (default 2 GiB) would
	// put the compiled code in the cache directory every process of these tests shares.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wide := testutil.WideCompile(2_000_000)
	sum := sha256.Sum256(wide)
	fn := uuid.NewString()
	if err := p.st.PutModule(ctx, hex.EncodeToString(sum[:]), wide); err != nil {
		t.Fatal(err)
	}
	if err := p.st.CreateFunction(ctx, store.Function{ID: fn, Name: "wide", ModuleHash: hex.EncodeToString(sum[:]), ModuleSize: int64(len(wide))}); err != nil {
		t.Fatal(err)
	}
	id, err := c.Execute(ctx, fn, []byte("21"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Result(ctx, id, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != client.StatusFailed || res.Error == nil || res.Error.Kind != "internal" ||
		!strings.Contains(res.Error.Message, "--compile-memory") {
		t.Fatalf("a task of a module the worker cannot compile: %s by %s %+v, want FAILED internal naming --compile-memory", res.Status, res.Worker, res.Error)
	}
	rs, err := p.records([]string{id})
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Attempts != 1 {
		t.Fatalf("attempts %d, want 1", rs[0].Attempts)
	}
	canary(t, c, register(t, c, "canary", samples.DoubleWAT, nil))
	if w.done() {
		t.Fatalf("the worker died: %v", w.err)
	}
}
