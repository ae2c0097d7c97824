package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"faas/client"
	"faas/internal/redistest"
	"faas/samples"
	"faas/sandbox"
	"faas/server"
	"faas/store"
)

type exampleEnv struct {
	st *store.Store
	sb *sandbox.Sandbox
}

// TestMain starts what the examples talk to: a redis-server, a faas server on a real
// listener and a local dispatcher. Without redis-server the package is skipped (it fails
// when CI=true).
func TestMain(m *testing.M) {
	if _, err := exec.LookPath("redis-server"); err != nil && os.Getenv("CI") != "true" {
		fmt.Println("skipping faas/client tests: redis-server not on PATH")
		os.Exit(0)
	}
	tb := &mainTB{}
	code := func() int {
		defer tb.cleanup()
		rs := redistest.Start(tb)
		rdb, err := store.Open(rs.URL)
		if err != nil {
			tb.Fatalf("store.Open: %v", err)
		}
		tb.Cleanup(func() { rdb.Close() })
		st := store.New(rdb, store.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sb, err := sandbox.New(ctx, sandbox.Config{})
		if err != nil {
			tb.Fatalf("sandbox.New: %v", err)
		}
		done := st.NewDone()
		go done.Run(ctx)
		<-done.Ready()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("listen: %v", err)
		}
		srv := server.New(st, sb, done, server.Config{}, slog.New(slog.DiscardHandler))
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ctx, ln) }()
		serverURL = "http://" + ln.Addr().String()
		startDispatcher(ctx, &exampleEnv{st: st, sb: sb})
		code := m.Run()
		cancel()
		select {
		case err := <-served:
			if err != nil {
				fmt.Fprintln(os.Stderr, "Serve:", err)
				code = 1
			}
		case <-time.After(11 * time.Second):
			fmt.Fprintln(os.Stderr, "Serve did not return within 11s of its context ending")
			code = 1
		}
		return code
	}()
	os.Exit(code)
}

// mainTB lets TestMain use redistest, which wants a testing.TB: it implements the few
// methods redistest calls (any other would panic on the nil embedded interface).
type mainTB struct {
	testing.TB
	cleanups []func()
	dirs     []string
}

func (*mainTB) Helper()                         {}
func (tb *mainTB) Cleanup(f func())             { tb.cleanups = append(tb.cleanups, f) }
func (tb *mainTB) Fatal(args ...any)            { tb.fail(fmt.Sprint(args...)) }
func (tb *mainTB) Fatalf(f string, args ...any) { tb.fail(fmt.Sprintf(f, args...)) }
func (tb *mainTB) Skip(args ...any)             { tb.skip(fmt.Sprint(args...)) }
func (tb *mainTB) Skipf(f string, args ...any)  { tb.skip(fmt.Sprintf(f, args...)) }
func (tb *mainTB) Logf(f string, args ...any)   { fmt.Fprintf(os.Stderr, f+"\n", args...) }
func (tb *mainTB) Errorf(f string, args ...any) { tb.fail(fmt.Sprintf(f, args...)) }
func (tb *mainTB) Name() string                 { return "TestMain" }
func (tb *mainTB) fail(msg string)              { fmt.Fprintln(os.Stderr, msg); tb.cleanup(); os.Exit(1) }
func (tb *mainTB) skip(msg string)              { fmt.Println("skipping:", msg); tb.cleanup(); os.Exit(0) }

func (tb *mainTB) TempDir() string {
	dir, err := os.MkdirTemp("", "faas-client-test-")
	if err != nil {
		tb.Fatalf("TempDir: %v", err)
	}
	tb.dirs = append(tb.dirs, dir)
	return dir
}

func (tb *mainTB) cleanup() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	tb.cleanups = nil
	for _, d := range tb.dirs {
		os.RemoveAll(d)
	}
	tb.dirs = nil
}

func TestAPIErrorFromAnyBody(t *testing.T) {
	for _, c := range []struct {
		name      string
		status    int
		body      string
		code, msg string
	}{
		{"contract error", 404, `{"error":{"code":"not_found","message":"no task"}}`, "not_found", "no task"},
		{"plain text", 502, "bad gateway\n", "", "bad gateway"},
		{"empty", 500, "", "", "Internal Server Error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				fmt.Fprint(w, c.body)
			}))
			defer hs.Close()
			_, err := client.New(hs.URL).Status(context.Background(), "x")
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("want an *APIError, got %T %v", err, err)
			}
			if apiErr.StatusCode != c.status || apiErr.Code != c.code || apiErr.Message != c.msg {
				t.Fatalf("got %+v", apiErr)
			}
			if errors.Is(err, client.ErrUnreachable) {
				t.Fatal("an answer is not ErrUnreachable")
			}
		})
	}
}

func TestContextCancelIsNotUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := client.New(serverURL).Result(ctx, "00000000-0000-0000-0000-000000000000", time.Second)
	// An unknown task is answered at once (404), before the context ends.
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("got %v", err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hs.Close()
	_, err = client.New(hs.URL).Status(ctx, "x")
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("a context that ends is the context's error, got %v", err)
	}
}

func TestTaskFields(t *testing.T) {
	ctx := context.Background()
	c := client.New(serverURL)
	fn, err := c.Register(ctx, "echo", nil, nil)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "invalid_module" || fn != "" {
		t.Fatalf("an empty module: %v", err)
	}
	fn, err = c.Register(ctx, "double", wasmDouble(), &client.Limits{TimeoutMs: 3000})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Execute(ctx, fn, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	tk, err := c.Result(ctx, id, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if tk.TaskID != id || tk.Status != client.StatusFailed || tk.Error == nil || tk.Error.Kind != "exit" ||
		string(tk.Result) != "exit: "+tk.Error.Message || len(tk.Stderr) == 0 || tk.Attempts != 1 ||
		tk.FunctionID != fn || tk.CreatedAt.IsZero() || tk.FinishedAt.IsZero() || len(tk.Raw) == 0 {
		t.Fatalf("got %+v", tk)
	}
	st, err := c.Status(ctx, id)
	if err != nil || st.Status != client.StatusFailed || !st.Terminal() {
		t.Fatalf("status: %+v %v", st, err)
	}
}

func wasmDouble() []byte { return samples.DoubleWAT }
