package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Dispatcher is one dispatcher of GET /workers: alive, heard within its heartbeat timeout.
type Dispatcher struct {
	ID             string       `json:"id"`
	Mode           string       `json:"mode"` // local, pull or push
	Address        string       `json:"address,omitempty"`
	Version        string       `json:"version"`
	StartedAt      time.Time    `json:"started_at"`
	HeardAt        time.Time    `json:"heard_at"`
	Slots          int          `json:"slots"`
	Running        int          `json:"running"`
	Done           int64        `json:"done"` // outcomes it recorded since it started
	Workers        []LiveWorker `json:"workers"`
	WorkersOmitted int          `json:"workers_omitted,omitempty"` // workers beyond the 100 listed
}

// LiveWorker is a remote worker of a Dispatcher.
type LiveWorker struct {
	ID      string    `json:"id"`
	Slots   int       `json:"slots"`
	Running int       `json:"running"`
	Done    int64     `json:"done"`
	HeardAt time.Time `json:"heard_at"`
}

// Workers is the answer of GET /workers.
type Workers struct {
	Dispatchers []Dispatcher    `json:"dispatchers"`
	Healthy     bool            `json:"healthy"`
	Reason      string          `json:"reason,omitempty"`
	Raw         json.RawMessage `json:"-"`
}

// Workers lists the dispatchers alive and their workers (with API keys, an admin key's
// request only: 403 otherwise).
func (c *Client) Workers(ctx context.Context) (Workers, error) {
	var w Workers
	raw, err := c.do(ctx, http.MethodGet, "/workers", "", nil, &w)
	w.Raw = raw
	return w, err
}

// HealthStatus is the answer of GET /healthz when the server reaches Redis.
type HealthStatus struct {
	Status string `json:"status"`           // ok or degraded
	Reason string `json:"reason,omitempty"` // why degraded
}

// HealthStatus returns /healthz's answer: "degraded" with the reason when no dispatcher
// is alive. Errors as Health.
func (c *Client) HealthStatus(ctx context.Context) (HealthStatus, error) {
	var h HealthStatus
	_, err := c.do(ctx, http.MethodGet, "/healthz", "", nil, &h)
	return h, err
}

// LogEntry is one recorded outcome of a function's task.
type LogEntry struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	TaskID     string    `json:"task_id"`
	FunctionID string    `json:"function_id"`
	Status     string    `json:"status"`
	Kind       string    `json:"kind,omitempty"`
	Message    string    `json:"message,omitempty"`
	Stderr     []byte    `json:"stderr,omitempty"` // its last 4 KiB
	DurationMs int64     `json:"duration_ms"`
	Worker     string    `json:"worker,omitempty"`
	Attempt    int       `json:"attempt"`
}

// LogOptions select log entries. Zero: the newest 100 of everything kept.
type LogOptions struct {
	Since  time.Duration // only the last Since
	Failed bool          // only FAILED tasks
	Limit  int           // at most this many (1 to 1000)
}

func (o LogOptions) query(follow bool) string {
	v := url.Values{}
	if o.Since > 0 {
		v.Set("since", o.Since.String())
	}
	if o.Failed {
		v.Set("failed", "1")
	}
	if o.Limit > 0 {
		v.Set("limit", strconv.Itoa(o.Limit))
	}
	if follow {
		v.Set("follow", "1")
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// Logs returns the log of a function (by id, or the newest of a name), oldest first.
func (c *Client) Logs(ctx context.Context, idOrName string, o LogOptions) ([]LogEntry, error) {
	var out []LogEntry
	_, err := c.do(ctx, http.MethodGet, "/functions/"+url.PathEscape(idOrName)+"/logs"+o.query(false), "", nil, &out)
	return out, err
}

// FollowLogs calls each with the log's history selected by o, then with each new entry as
// it is recorded, until ctx ends (then it returns ctx's error), each returns an error, or
// the stream breaks. Each entry's raw JSON comes with it.
func (c *Client) FollowLogs(ctx context.Context, idOrName string, o LogOptions, each func(LogEntry, json.RawMessage) error) error {
	path := "/functions/" + url.PathEscape(idOrName) + "/logs" + o.query(true)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: GET %s: %w", ErrUnreachable, c.base+path, unwrapURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		ae := apiError(resp.StatusCode, raw)
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n >= 0 {
			ae.RetryAfter = time.Duration(n) * time.Second
		}
		return ae
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0: // end of an event
			if event == "outcome" && len(data) > 0 {
				var e LogEntry
				if err := json.Unmarshal(data, &e); err != nil {
					return fmt.Errorf("faas server: log stream: unexpected event: %w", err)
				}
				if err := each(e, json.RawMessage(bytes.Clone(data))); err != nil {
					return err
				}
			}
			if event == "error" {
				return fmt.Errorf("%w: the server ended the log stream: %s", ErrUnreachable, data)
			}
			event, data = "", data[:0]
		case line[0] == ':': // a comment: keep-alive
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[len("data: "):]...)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: reading the log stream: %w", ErrUnreachable, err)
	}
	return fmt.Errorf("%w: the server closed the log stream", ErrUnreachable)
}
