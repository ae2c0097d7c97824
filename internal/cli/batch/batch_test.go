package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"faas/client"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       string
		skip       bool
		err        string
	}{
		{name: "string", line: `"héllo"`, want: "héllo"},
		{name: "escaped string", line: `"a\nb\u0000"`, want: "a\nb\x00"},
		{name: "empty string", line: `""`, want: ""},
		{name: "payload", line: `{"payload": "AAEC/w=="}`, want: "\x00\x01\x02\xff"},
		{name: "empty payload", line: `{"payload": ""}`, want: ""},
		{name: "number", line: ` 42 `, want: "42"},
		{name: "array", line: `[1, 2]`, want: "[1, 2]"},
		{name: "object without payload", line: `{"a": 1}`, want: `{"a": 1}`},
		{name: "null", line: `null`, want: "null"},
		{name: "crlf", line: "\"x\"\r\n", want: "x"},
		{name: "blank", line: " \t\r\n", skip: true},
		{name: "not json", line: `hello`, err: "not valid JSON"},
		{name: "bare word says what a line may be", line: `hello`, err: "quote a bare word"},
		{name: "two values", line: `1 2`, err: "not valid JSON"},
		{name: "payload not base64", line: `{"payload": "!!"}`, err: "base64"},
		{name: "payload not string", line: `{"payload": 3}`, err: "base64 string"},
		{name: "payload null", line: `{"payload": null}`, err: "base64 string"},
		{name: "payload and more", line: `{"payload": "", "x": 1}`, err: `"x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ParseLine([]byte(tc.line))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok == tc.skip {
				t.Fatalf("ok = %v, want %v", ok, !tc.skip)
			}
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCountNamesBadLine(t *testing.T) {
	n, err := Count(strings.NewReader("\"a\"\n\n1\nnope\n2\n"))
	var le *LineError
	if !errors.As(err, &le) || le.Line != 4 {
		t.Fatalf("Count = %d, %v; want a LineError on line 4", n, err)
	}
	n, err = Count(strings.NewReader("\"a\"\n\n1\n[2]")) // no final newline
	if err != nil || n != 3 {
		t.Fatalf("Count = %d, %v; want 3, nil", n, err)
	}
}

// fakeServer runs "double the number" tasks with random delays, fails inputs "fail".
type fakeServer struct {
	mu       sync.Mutex
	n        int
	tasks    map[string]*client.Task
	due      map[string]time.Time
	inFlight int // submitted, not yet reported terminal to the waiter
	maxSeen  int
	waits    int
}

func newFake() *fakeServer {
	return &fakeServer{tasks: map[string]*client.Task{}, due: map[string]time.Time{}}
}

func (f *fakeServer) ExecuteBatch(ctx context.Context, fn string, inputs [][]byte) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, len(inputs))
	for i, in := range inputs {
		f.n++
		id := fmt.Sprintf("t%07d", f.n)
		ids[i] = id
		t := &client.Task{TaskID: id}
		if string(in) == "fail" {
			t.Status = "FAILED"
			t.Error = &client.Failure{Kind: "exit", Message: "exit code 1"}
		} else if string(in) == "bin" {
			t.Status, t.Result = "COMPLETED", []byte{0xff, 0xfe}
		} else {
			var v int
			fmt.Sscan(string(in), &v)
			t.Status, t.Result = "COMPLETED", []byte(fmt.Sprint(2*v))
		}
		f.tasks[id] = t
		f.due[id] = time.Now().Add(time.Duration(rand.IntN(2000)) * time.Microsecond)
		f.inFlight++
		f.maxSeen = max(f.maxSeen, f.inFlight)
	}
	return ids, nil
}

func (f *fakeServer) Wait(ctx context.Context, ids []string, wait time.Duration) ([]client.Task, error) {
	deadline := time.Now().Add(wait)
	for {
		f.mu.Lock()
		f.waits++
		var out []client.Task
		for _, id := range ids {
			if d, ok := f.due[id]; ok && time.Now().After(d) {
				out = append(out, *f.tasks[id])
				delete(f.due, id)
				delete(f.tasks, id)
				f.inFlight--
			}
		}
		f.mu.Unlock()
		if len(out) > 0 || time.Now().After(deadline) {
			return out, nil
		}
		select {
		case <-time.After(200 * time.Microsecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func TestRunInOrderBoundedWindow(t *testing.T) {
	const n = 20000
	var in bytes.Buffer
	for i := range n {
		switch {
		case i == 777:
			fmt.Fprintln(&in, `"fail"`)
		case i == 778:
			fmt.Fprintln(&in, `{"payload":"Ymlu"}`) // "bin"
		case i%1000 == 5:
			fmt.Fprintln(&in) // blank lines do not count
			fmt.Fprintln(&in, i)
		default:
			fmt.Fprintln(&in, i)
		}
	}
	f := newFake()
	var out bytes.Buffer
	cfg := Config{Chunk: 100, Window: 1000, Concurrency: 3, WaitIDs: 300, Poll: 50 * time.Millisecond}
	sum, err := Run(context.Background(), f, "fn", &in, &out, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Inputs != n || sum.Failed != 1 || sum.Completed != n-1 {
		t.Fatalf("summary %+v", sum)
	}
	if f.maxSeen > cfg.Window {
		t.Errorf("%d tasks outstanding at once, window is %d", f.maxSeen, cfg.Window)
	}
	sc := bufio.NewScanner(&out)
	i := 0
	for ; sc.Scan(); i++ {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.Index != i {
			t.Fatalf("line %d has index %d", i, l.Index)
		}
		switch i {
		case 777:
			if l.Status != "FAILED" || l.Error == nil || l.Error.Kind != "exit" || l.Result != "exit: exit code 1" {
				t.Fatalf("failed line: %s", sc.Bytes())
			}
		case 778:
			if l.ResultEncoding != "base64" || l.Result != "//4=" {
				t.Fatalf("binary line: %s", sc.Bytes())
			}
		default:
			if l.Status != "COMPLETED" || l.Result != fmt.Sprint(2*i) || l.ResultEncoding != "utf-8" || l.Error != nil {
				t.Fatalf("line %d: %s", i, sc.Bytes())
			}
		}
	}
	if i != n {
		t.Fatalf("%d lines, want %d", i, n)
	}
}

func TestRunBadLineRunsWhatCameBefore(t *testing.T) {
	f := newFake()
	var out bytes.Buffer
	sum, err := Run(context.Background(), f, "fn", strings.NewReader("1\n2\n\n{bad\n3\n"), &out, Config{Poll: 10 * time.Millisecond})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 4 {
		t.Fatalf("err = %v, want a LineError on line 4", err)
	}
	if sum.Inputs != 2 || strings.Count(out.String(), "\n") != 2 {
		t.Fatalf("summary %+v, output %q", sum, out.String())
	}
}

func TestRunEmpty(t *testing.T) {
	var out bytes.Buffer
	sum, err := Run(context.Background(), newFake(), "fn", strings.NewReader("\n\n"), &out, Config{})
	if err != nil || sum.Inputs != 0 || out.Len() != 0 {
		t.Fatalf("sum %+v err %v out %q", sum, err, out.String())
	}
}

type failingSubmit struct{ *fakeServer }

func (failingSubmit) ExecuteBatch(context.Context, string, [][]byte) ([]string, error) {
	return nil, &client.APIError{StatusCode: 404, Code: "not_found", Message: "no function"}
}

func TestRunSubmitErrorStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var big bytes.Buffer
	for i := range 50000 {
		fmt.Fprintln(&big, i)
	}
	_, err := Run(ctx, failingSubmit{newFake()}, "fn", &big, &bytes.Buffer{}, Config{})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Fatalf("err = %v, want the APIError", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run did not stop promptly")
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := ioPipe()
	defer pw.Close()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, newFake(), "fn", pr, &bytes.Buffer{}, Config{})
		done <- err
	}()
	fmt.Fprintln(pw, 1)
	time.Sleep(50 * time.Millisecond) // let the reader block in its next Read
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop on cancel")
	}
}

type sizeRecorder struct {
	*fakeServer
	mu    sync.Mutex
	sizes [][2]int // inputs, bytes
}

func (s *sizeRecorder) ExecuteBatch(ctx context.Context, fn string, inputs [][]byte) ([]string, error) {
	n := 0
	for _, in := range inputs {
		n += len(in)
	}
	s.mu.Lock()
	s.sizes = append(s.sizes, [2]int{len(inputs), n})
	s.mu.Unlock()
	return s.fakeServer.ExecuteBatch(ctx, fn, inputs)
}

func TestRunChunkBytes(t *testing.T) {
	var in bytes.Buffer
	big := strings.Repeat("x", 3000)
	for i := range 50 {
		if i == 20 {
			fmt.Fprintf(&in, "%q\n", strings.Repeat("y", 5000)) // larger than a chunk: alone
			continue
		}
		fmt.Fprintf(&in, "%q\n", big)
	}
	rec := &sizeRecorder{fakeServer: newFake()}
	var out bytes.Buffer
	sum, err := Run(context.Background(), rec, "fn", &in, &out, Config{ChunkBytes: 10000, Poll: 10 * time.Millisecond})
	if err != nil || sum.Inputs != 50 {
		t.Fatalf("%+v %v", sum, err)
	}
	total := 0
	for _, s := range rec.sizes {
		total += s[0]
		if s[1] > 10000 && s[0] != 1 {
			t.Errorf("a chunk of %d inputs carried %d bytes", s[0], s[1])
		}
	}
	if total != 50 {
		t.Fatalf("%d inputs submitted", total)
	}
}

func TestNewLineStderr(t *testing.T) {
	for _, c := range []struct {
		name     string
		task     client.Task
		wantJSON string
	}{
		{"none", client.Task{TaskID: "a", Status: "COMPLETED", Result: []byte("2")},
			`{"index":0,"task_id":"a","status":"COMPLETED","result":"2","result_encoding":"utf-8","cpu_units":0}`},
		{"text", client.Task{TaskID: "b", Status: "FAILED", Error: &client.Failure{Kind: "exit", Message: "exit code 2"},
			Stderr: []byte("double: not an integer\n")},
			`{"index":0,"task_id":"b","status":"FAILED","result":"exit: exit code 2","result_encoding":"utf-8","error":{"kind":"exit","message":"exit code 2"},"cpu_units":0,"stderr":"double: not an integer\n","stderr_encoding":"utf-8"}`},
		{"binary", client.Task{TaskID: "c", Status: "COMPLETED", Result: []byte("ok"), Stderr: []byte{0xff, 0x00}},
			`{"index":0,"task_id":"c","status":"COMPLETED","result":"ok","result_encoding":"utf-8","cpu_units":0,"stderr":"/wA=","stderr_encoding":"base64"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := json.Marshal(NewLine(0, c.task))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.wantJSON {
				t.Errorf("line\n got %s\nwant %s", got, c.wantJSON)
			}
		})
	}
}
