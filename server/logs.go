package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"faas/store"
	"faas/task"
)

// GET /functions/{id_or_name}/logs: the outcomes of a function's tasks as they were
// recorded (store/logs.go). Without follow, a JSON array; with follow=1, server-sent events:
// the history first, then each new outcome as it is recorded (docs/RATIONALE.md says why
// SSE rather than a long poll).
//
// A follower holds one pooled Redis connection while it waits (XREAD BLOCK), so followers
// are bounded per server (503 beyond) and per namespace (429 beyond): the pool must keep
// connections for everything else.

const (
	// DefaultMaxLogFollowers bounds the followers of one server: each holds one of the
	// Redis pool's connections (10 per CPU by default) for followBlock at a time.
	DefaultMaxLogFollowers = 8
	// DefaultMaxLogFollowersPerNamespace bounds those of one namespace.
	DefaultMaxLogFollowersPerNamespace = 4
	// DefaultLogLimit is how many entries an answer holds without limit=.
	DefaultLogLimit = 100
	// maxLogSince bounds since=: a log keeps at most store.LogTTL anyway.
	maxLogSince = store.LogTTL
	// followBlock is how long one XREAD waits; an SSE comment is sent after each empty
	// one, so that proxies with an idle timeout keep the stream open.
	followBlock = 5 * time.Second
)

// followers counts the log followers of the server and of each namespace.
type followers struct {
	mu    sync.Mutex
	total int
	perNS map[string]int
}

func (f *followers) take(ns string, max, maxNS int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.total >= max {
		return busy("this server has %d log followers, its limit; try again later or without follow", f.total)
	}
	if f.perNS[ns] >= maxNS {
		return &requestError{kind: errRateLimited,
			msg: "namespace " + ns + " has " + strconv.Itoa(f.perNS[ns]) + " log followers on this server, its limit"}
	}
	if f.perNS == nil {
		f.perNS = make(map[string]int)
	}
	f.total++
	f.perNS[ns]++
	return nil
}

func (f *followers) put(ns string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total--
	if f.perNS[ns]--; f.perNS[ns] <= 0 {
		delete(f.perNS, ns)
	}
}

// logQuery is the parsed query string of the logs endpoint.
type logQuery struct {
	store.LogQuery
	follow bool
}

func parseLogQuery(r *http.Request) (logQuery, error) {
	var q logQuery
	v := r.URL.Query()
	if s := v.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > maxLogSince {
			return q, badRequest("since=%q: want a duration such as 10m or 2h, at most %v", s, maxLogSince)
		}
		q.Since = d
	}
	var err error
	if q.Failed, err = queryBool(v.Get("failed")); err != nil {
		return q, badRequest("failed=%q: want 1 or 0 (true or false)", v.Get("failed"))
	}
	if q.follow, err = queryBool(v.Get("follow")); err != nil {
		return q, badRequest("follow=%q: want 1 or 0 (true or false)", v.Get("follow"))
	}
	q.Limit = DefaultLogLimit
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.LogMaxLen {
			return q, badRequest("limit=%q: want 1 to %d", s, store.LogMaxLen)
		}
		q.Limit = n
	}
	return q, nil
}

func queryBool(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	return strconv.ParseBool(s)
}

// logs handles GET /functions/{id_or_name}/logs.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	key := mux.Vars(r)["id_or_name"]
	ns := namespace(r.Context())
	q, err := parseLogQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f, err := s.st.FunctionIn(r.Context(), ns, key)
	if errors.Is(err, store.ErrNotFound) {
		err = notFound("no function with id or name %q", key)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !q.follow {
		entries, _, err := s.st.Logs(r.Context(), f.ID, q.LogQuery)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeValue(w, r, http.StatusOK, entries)
		return
	}
	if err := s.logFollowers.take(ns, s.cfg.MaxLogFollowers, s.cfg.MaxLogFollowersPerNamespace); err != nil {
		s.writeError(w, r, err)
		return
	}
	defer s.logFollowers.put(ns)
	s.followLogs(w, r, f.ID, q)
}

// followLogs streams the log as server-sent events until the client leaves or the server
// stops. A client that reconnects with Last-Event-ID resumes after that entry.
func (s *Server) followLogs(w http.ResponseWriter, r *http.Request, fnID string, q logQuery) {
	ctx := r.Context()
	var history []store.LogEntry
	cursor := r.Header.Get("Last-Event-ID")
	if cursor != "" && !store.ValidLogCursor(cursor) {
		s.writeError(w, r, badRequest("Last-Event-ID %q: want an id of an earlier event", cursor))
		return
	}
	if cursor == "" {
		var err error
		if history, cursor, err = s.st.Logs(ctx, fnID, q.LogQuery); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	rc := http.NewResponseController(w)
	// The server's write timeout is for ordinary answers; a stream lasts as long as its
	// reader stays.
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	send := func(entries []store.LogEntry) bool {
		for _, e := range entries {
			if q.Failed && e.Status != task.Failed {
				continue
			}
			b, _ := json.Marshal(e)
			buf := make([]byte, 0, len(b)+len(e.ID)+32)
			buf = append(buf, "id: "...)
			buf = append(buf, e.ID...)
			buf = append(buf, "\nevent: outcome\ndata: "...)
			buf = append(buf, b...)
			buf = append(buf, "\n\n"...)
			if _, err := w.Write(buf); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !send(history) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		default:
		}
		entries, next, err := s.st.FollowLogs(ctx, fnID, cursor, followBlock)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The stream says so and the client reconnects (EventSource does, with
			// Last-Event-ID): nothing is lost, the entries stay in Redis.
			s.log.Warn("following a function log failed", "function_id", fnID, "err", err)
			_, _ = w.Write([]byte("event: error\ndata: {\"message\":\"the server cannot reach Redis right now; reconnect\"}\n\n"))
			_ = rc.Flush()
			return
		}
		cursor = next
		if len(entries) == 0 {
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil || rc.Flush() != nil {
				return
			}
			continue
		}
		if !send(entries) {
			return
		}
	}
}
