// Package client is a Go client of the faas REST API (docs/API.md), used by the faas
// command line, the tests and the benchmarks.
//
// Every non-2xx answer is returned as an *APIError carrying the server's status, stable
// code and message; a server that cannot be reached gives an error wrapping ErrUnreachable.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"faas/task"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrUnreachable wraps failures to reach the server (connection refused, reset, DNS...).
var ErrUnreachable = errors.New("faas server unreachable")

// APIError is a non-2xx answer of the server.
type APIError struct {
	StatusCode int    // HTTP status
	Code       string // bad_request, invalid_module, not_found, too_large, unavailable, internal, unauthorized, unsupported_media_type, rate_limited, quota_exceeded
	Message    string // what the server said, for a person
	// RetryAfter is the server's Retry-After: on a 503 (it is full or cannot reach Redis for
	// now) or a 429 rate_limited, when to try again; zero when it sent none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("faas server: HTTP %d: %s", e.StatusCode, e.Message)
	}
	return fmt.Sprintf("faas server: %s (HTTP %d): %s", e.Code, e.StatusCode, e.Message)
}

// Limits bound each run of a function. A zero field means the server's default.
type Limits = task.Limits

// Function is a registered function.
type Function struct {
	ID         string    `json:"function_id"`
	Name       string    `json:"name"`
	ModuleHash string    `json:"module_sha256"`
	ModuleSize int64     `json:"module_size"`
	ABI        string    `json:"abi"` // "command" (exports _start) or "reactor" (exports run)
	Limits     Limits    `json:"limits"`
	CreatedAt  time.Time `json:"created_at"`
}

// Failure is why a task FAILED: its kind (one of task.Kinds) and a message.
type Failure = task.Failure

// The task statuses.
const (
	StatusQueued    = "QUEUED"
	StatusRunning   = "RUNNING"
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
)

// Task is a task's state as the server answered it.
type Task struct {
	TaskID     string    `json:"task_id"`
	Status     string    `json:"status"`
	Result     []byte    `json:"result"` // stdout when COMPLETED; "<kind>: <message>" when FAILED
	Error      *Failure  `json:"error,omitempty"`
	Stderr     []byte    `json:"stderr,omitempty"`
	FunctionID string    `json:"function_id,omitempty"`
	Attempts   int       `json:"attempts"`
	DurationMs int64     `json:"duration_ms"`
	CPUUnits   uint64    `json:"cpu_units"` // guest function entries and loop iterations (terminal tasks)
	Worker     string    `json:"worker,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// ResultOmitted is set by the server in a /wait answer when the task's output did not
	// fit in it. Client.Wait fetches such outputs itself, so its callers never see it set.
	ResultOmitted bool `json:"result_omitted,omitempty"`
	// Raw is the server's JSON answer for this task, as received (for --json).
	Raw json.RawMessage `json:"-"`
}

// Terminal reports whether the task is COMPLETED or FAILED.
func (t Task) Terminal() bool { return t.Status == StatusCompleted || t.Status == StatusFailed }

// Client talks to one faas server. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
	auth string // "Bearer KEY", or "" without a key
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client use hc (for its transport, TLS settings or timeout).
// A timeout shorter than the longest wait asked of Result or Wait cuts those waits short.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithAPIKey sends key on every request (Authorization: Bearer KEY): a server run with
// --api-keys answers 401 without it, and scopes everything to the key's namespace.
func WithAPIKey(key string) Option {
	return func(c *Client) {
		if key != "" {
			c.auth = "Bearer " + key
		}
	}
}

// New returns a client of the server at baseURL (like "http://127.0.0.1:8000"). By default
// it keeps up to 256 idle connections to the server, so that many goroutines can share it.
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/")}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 256
		tr.Proxy = nil // a local control plane: do not send it through HTTP_PROXY
		c.hc = &http.Client{Transport: tr}
	}
	return c
}

// do sends a request and decodes a 2xx JSON answer into out (unless out is nil). It returns
// the raw body of the answer.
func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %s %s: %w", ErrUnreachable, method, c.base+path, unwrapURL(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: reading the answer to %s %s: %w", ErrUnreachable, method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := apiError(resp.StatusCode, raw)
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n >= 0 {
			ae.RetryAfter = time.Duration(n) * time.Second
		}
		return nil, ae
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("faas server: %s %s: unexpected answer: %w", method, path, err)
		}
	}
	return raw, nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func apiError(status int, raw []byte) *APIError {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &APIError{StatusCode: status}
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		return e
	}
	e.Message = strings.TrimSpace(string(raw))
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "..."
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// Register uploads a module as a new function called name and returns its id. limits nil
// means the server's defaults. The module travels raw (Content-Type application/wasm).
func (c *Client) Register(ctx context.Context, name string, wasm []byte, limits *Limits) (string, error) {
	q := url.Values{"name": {name}}
	if limits != nil {
		for _, p := range []struct {
			k string
			v int64
		}{
			{"timeout_ms", limits.TimeoutMs}, {"memory_mb", limits.MemoryMB},
			{"stdout_bytes", limits.StdoutBytes}, {"stdin_bytes", limits.StdinBytes},
			{"cpu_units", limits.CPUUnits},
		} {
			if p.v != 0 {
				q.Set(p.k, strconv.FormatInt(p.v, 10))
			}
		}
	}
	if wasm == nil {
		wasm = []byte{}
	}
	var out struct {
		FunctionID string `json:"function_id"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/register_function?"+q.Encode(), "application/wasm", wasm, &out); err != nil {
		return "", err
	}
	return out.FunctionID, nil
}

// Execute submits one run of a function with input as its stdin and returns the task id.
func (c *Client) Execute(ctx context.Context, functionID string, input []byte) (string, error) {
	if input == nil {
		input = []byte{}
	}
	body, err := json.Marshal(struct {
		FunctionID string `json:"function_id"`
		Payload    []byte `json:"payload"`
	}{functionID, input})
	if err != nil {
		return "", err
	}
	var out struct {
		TaskID string `json:"task_id"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/execute_function", "application/json", body, &out); err != nil {
		return "", err
	}
	return out.TaskID, nil
}

// ExecuteBatch submits one task per input, in one request, and returns their ids in input
// order. The server caps the inputs and bytes per request (10,000 and 64 MiB by default):
// send larger batches in chunks.
func (c *Client) ExecuteBatch(ctx context.Context, functionID string, inputs [][]byte) ([]string, error) {
	payloads := make([][]byte, len(inputs))
	for i, in := range inputs {
		if in == nil {
			in = []byte{}
		}
		payloads[i] = in
	}
	body, err := json.Marshal(struct {
		FunctionID string   `json:"function_id"`
		Payloads   [][]byte `json:"payloads"`
	}{functionID, payloads})
	if err != nil {
		return nil, err
	}
	var out struct {
		TaskIDs []string `json:"task_ids"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/execute_batch", "application/json", body, &out); err != nil {
		return nil, err
	}
	if len(out.TaskIDs) != len(inputs) {
		return nil, fmt.Errorf("faas server: /execute_batch answered %d task ids for %d inputs", len(out.TaskIDs), len(inputs))
	}
	return out.TaskIDs, nil
}

func decodeTask(raw []byte) (Task, error) {
	var t Task
	if err := json.Unmarshal(raw, &t); err != nil {
		return Task{}, fmt.Errorf("faas server: unexpected task answer: %w", err)
	}
	t.Raw = json.RawMessage(raw)
	return t, nil
}

// Status returns a task's status (Result is not filled in: use Result for it).
func (c *Client) Status(ctx context.Context, taskID string) (Task, error) {
	raw, err := c.do(ctx, http.MethodGet, "/status/"+url.PathEscape(taskID), "", nil, nil)
	if err != nil {
		return Task{}, err
	}
	return decodeTask(bytes.TrimSpace(raw))
}

// Result returns a task with its result. With wait > 0 the server holds the request until
// the task is terminal or wait runs out (capped by the server, 30 s by default); the task
// may then still be QUEUED or RUNNING.
func (c *Client) Result(ctx context.Context, taskID string, wait time.Duration) (Task, error) {
	path := "/result/" + url.PathEscape(taskID)
	if wait > 0 {
		path += "?wait=" + wait.String()
	}
	raw, err := c.do(ctx, http.MethodGet, path, "", nil, nil)
	if err != nil {
		return Task{}, err
	}
	return decodeTask(bytes.TrimSpace(raw))
}

// Wait returns the tasks among taskIDs that are terminal. If none is yet, the server waits
// up to wait (capped, 30 s by default) for at least one to end; an empty slice means none
// ended in time. An unknown id is an *APIError with code not_found.
func (c *Client) Wait(ctx context.Context, taskIDs []string, wait time.Duration) ([]Task, error) {
	req := struct {
		TaskIDs []string `json:"task_ids"`
		Wait    string   `json:"wait,omitempty"`
	}{TaskIDs: taskIDs}
	if wait > 0 {
		req.Wait = wait.String()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out struct {
		Tasks []json.RawMessage `json:"tasks"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/wait", "application/json", body, &out); err != nil {
		return nil, err
	}
	tasks := make([]Task, len(out.Tasks))
	for i, raw := range out.Tasks {
		if tasks[i], err = decodeTask(raw); err != nil {
			return nil, err
		}
	}
	// Outputs the server left out of the answer (too large for one) are fetched one by one,
	// so that neither side holds more than one of them at a time.
	for i := range tasks {
		if tasks[i].ResultOmitted {
			if tasks[i], err = c.resultRetrying(ctx, tasks[i].TaskID); err != nil {
				return nil, err
			}
		}
	}
	return tasks, nil
}

// resultRetrying reads a terminal task's result, waiting out the 503s of a server that is
// answering as many results as it may (it says when to come back) for up to a minute.
func (c *Client) resultRetrying(ctx context.Context, id string) (Task, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		t, err := c.Result(ctx, id, 0)
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || ae.StatusCode != http.StatusServiceUnavailable ||
			ae.RetryAfter <= 0 || time.Now().After(deadline) {
			return t, err
		}
		timer := time.NewTimer(min(ae.RetryAfter, 5*time.Second))
		select {
		case <-ctx.Done():
			timer.Stop()
			return Task{}, ctx.Err()
		case <-timer.C:
		}
	}
}

// Functions lists every registered function, newest first.
func (c *Client) Functions(ctx context.Context) ([]Function, error) {
	var out struct {
		Functions []Function `json:"functions"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/functions", "", nil, &out); err != nil {
		return nil, err
	}
	return out.Functions, nil
}

// Function returns a function by id, or the newest registered under a name.
func (c *Client) Function(ctx context.Context, idOrName string) (Function, error) {
	var f Function
	_, err := c.do(ctx, http.MethodGet, "/functions/"+url.PathEscape(idOrName), "", nil, &f)
	return f, err
}

// Deleted is the answer to Delete.
type Deleted struct {
	ID            string `json:"function_id"`
	Name          string `json:"name"`
	ModuleDeleted bool   `json:"module_deleted"` // no function uses its module any more
}

// Delete deletes a function by id, or the newest registered under a name. Its tasks still
// queued become FAILED when a dispatcher reaches them; running ones finish.
func (c *Client) Delete(ctx context.Context, idOrName string) (Deleted, error) {
	var d Deleted
	_, err := c.do(ctx, http.MethodDelete, "/functions/"+url.PathEscape(idOrName), "", nil, &d)
	return d, err
}

// Health returns nil when the server answers and reaches Redis; an *APIError with code
// unavailable when it cannot reach Redis; an error wrapping ErrUnreachable when the server
// itself cannot be reached.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/healthz", "", nil, nil)
	return err
}
