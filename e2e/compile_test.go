package e2e

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"faas/client"
	"faas/internal/testutil"
	"faas/samples"
)

// slowModule is a valid module, within every structural limit, that takes wazero seconds to
// compile: funcs functions of 9,000 empty loops each (compile time grows with the square of
// a function's blocks).
func slowModule(funcs int) []byte {
	leb := func(n int) []byte {
		var b []byte
		for {
			c := byte(n & 0x7f)
			n >>= 7
			if n == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	section := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, leb(len(body))...), body...)
	}
	m := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	m = append(m, section(1, []byte{1, 0x60, 0, 0})...) // one type: () -> ()
	fns := leb(funcs + 1)
	for range funcs + 1 {
		fns = append(fns, 0)
	}
	m = append(m, section(3, fns)...)
	m = append(m, section(7, append([]byte{1, 6}, append([]byte("_start"), 0, 0)...))...)
	code := leb(funcs + 1)
	code = append(code, 2, 0, 0x0b) // _start: nothing
	body := []byte{0}
	for range 9000 {
		body = append(body, 0x03, 0x40, 0x0b) // loop end
	}
	body = append(body, 0x0b)
	for range funcs {
		code = append(code, leb(len(body))...)
		code = append(code, body...)
	}
	return append(m, section(10, code)...)
}

// startDevWith runs `faas dev` with extra flags and returns it with a client.
func startDevWith(tb testing.TB, extra ...string) (*proc, *client.Client) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("e2e: tests on real processes are skipped with -short")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(tb))
	p := startProc(tb, "dev", append([]string{"dev", "--addr", addr, "-w", "1", "--cache-dir", tb.TempDir()}, extra...)...)
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
	p, c := startDevWith(t, "--compile-memory", "64MiB")
	refused(t, c, "big", samples.DoubleGo, "--compile-memory")
	fn := register(t, c, "canary", samples.DoubleWAT, nil)
	canary(t, c, fn)
	survived(t, p, c, 512*mib)
}

// A module whose compilation outlasts --compile-timeout is refused naming the limit; two at
// once queue behind one child at a time, and the server answers meanwhile.
func TestAttackCompileTimeout(t *testing.T) {
	p, c := startDevWith(t, "--compile-timeout", "1s")
	slow := slowModule(6)
	errs := make(chan string, 2)
	for i := range 2 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			wasm := append(append([]byte(nil), slow...), 0, 5, 4, 'p', 'a', 'd', byte('0'+i)) // a custom section: another hash
			_, err := c.Register(ctx, "slow"+strconv.Itoa(i), wasm, nil)
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
