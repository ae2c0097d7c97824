package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"faas/task"
)

// Function logs: each recorded outcome is appended to a Redis Stream of its function, so
// that `faas logs` has recent history (XREVRANGE by time: stream ids are Redis's clock) and
// followers wake on new entries (XREAD BLOCK) without polling task records.
//
//	<prefix>log:{<function id>}  stream  one entry per recorded outcome (fields below),
//	                                     about LogMaxLen kept (MAXLEN ~), PX LogTTL
//
// The key has its own hash tag and is written by CompleteFrom with plain commands after the
// complete script, never inside it (see claim.go).

const (
	// LogMaxLen is about how many entries a function's log keeps (MAXLEN ~ trims in whole
	// macro nodes, so a few more may stay).
	LogMaxLen = 1000
	// LogTTL is how long a function's log lives after its last entry.
	LogTTL = 24 * time.Hour
	// LogStderrBytes bounds the stderr tail an entry keeps: with LogMaxLen, one function's
	// log stays under about 5 MB. The task record keeps the whole stderr.
	LogStderrBytes = 4096
)

// Log entry fields.
const (
	lTask     = "t"
	lStatus   = "s"
	lKind     = "k"
	lMessage  = "m"
	lStderr   = "e"
	lDuration = "d"
	lWorker   = "w"
	lAttempt  = "a"
)

// LogEntry is one outcome in a function's log.
type LogEntry struct {
	ID         string      `json:"id"` // the stream id: where a follower resumes
	Time       time.Time   `json:"time"`
	TaskID     string      `json:"task_id"`
	FunctionID string      `json:"function_id"`
	Status     task.Status `json:"status"`
	Kind       task.Kind   `json:"kind,omitempty"`
	Message    string      `json:"message,omitempty"`
	Stderr     []byte      `json:"stderr,omitempty"` // the last LogStderrBytes (base64 in JSON)
	DurationMs int64       `json:"duration_ms"`
	Worker     string      `json:"worker,omitempty"`
	Attempt    int         `json:"attempt"`
}

// LogQuery selects entries of a function's log.
type LogQuery struct {
	Since  time.Duration // entries of the last Since (0: all kept)
	Failed bool          // FAILED outcomes only
	Limit  int           // at most this many, the newest (0 or more than LogMaxLen: LogMaxLen)
}

// logBatch gathers the log entries of one batch of outcomes.
type logBatch struct {
	entries []logEntryArgs
	keys    map[string]struct{} // streams touched, for one PEXPIRE each
}

type logEntryArgs struct {
	key  string
	vals []any
}

// add adds outcome o of function fnID (nothing for a task without a function id).
func (b *logBatch) add(k keys, fnID string, o *task.Outcome) {
	if fnID == "" {
		return
	}
	var kind, msg string
	if o.Failure != nil {
		kind, msg = string(o.Failure.Kind), o.Failure.Message
	}
	stderr := o.Stderr
	if len(stderr) > LogStderrBytes {
		stderr = stderr[len(stderr)-LogStderrBytes:]
	}
	// Empty fields are left out: most entries (COMPLETED, silent) are then 4 fields.
	vals := make([]any, 0, 16)
	vals = append(vals, lTask, o.ID, lStatus, string(o.Status()), lDuration, o.Duration.Milliseconds(), lAttempt, o.Attempt)
	for _, f := range [...]struct {
		name string
		v    string
	}{{lKind, kind}, {lMessage, msg}, {lWorker, o.Worker}} {
		if f.v != "" {
			vals = append(vals, f.name, f.v)
		}
	}
	if len(stderr) > 0 {
		vals = append(vals, lStderr, stderr)
	}
	key := k.functionLog(fnID)
	b.entries = append(b.entries, logEntryArgs{key, vals})
	if b.keys == nil {
		b.keys = make(map[string]struct{}, 1)
	}
	b.keys[key] = struct{}{}
}

func (b *logBatch) write(ctx context.Context, p redis.Pipeliner) {
	for _, e := range b.entries {
		p.XAdd(ctx, &redis.XAddArgs{Stream: e.key, MaxLen: LogMaxLen, Approx: true, Values: e.vals})
	}
	for key := range b.keys { // once per function of the batch, not per outcome
		p.PExpire(ctx, key, LogTTL)
	}
}

// Logs returns entries of function fnID's log, oldest first, and the cursor from which
// FollowLogs reads what comes after them.
func (s *Store) Logs(ctx context.Context, fnID string, q LogQuery) ([]LogEntry, string, error) {
	limit := q.Limit
	if limit <= 0 || limit > LogMaxLen {
		limit = LogMaxLen
	}
	// Redis's clock, read before the range: whatever is added after the range has an id at
	// or after it, so the cursor below misses nothing and repeats nothing.
	now, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return nil, "", redisErr("logs", err)
	}
	nowMs := now.UnixMilli()
	lo := "-"
	if q.Since > 0 {
		lo = strconv.FormatInt(max(0, nowMs-q.Since.Milliseconds()), 10)
	}
	count := int64(limit)
	if q.Failed {
		count = LogMaxLen * 2 // the failed ones among everything kept (MAXLEN ~ keeps a few more)
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.k.functionLog(fnID), "+", lo, count).Result()
	if err != nil {
		return nil, "", redisErr("logs", err)
	}
	cursor := fmt.Sprintf("%d-%d", nowMs-1, uint64(math.MaxUint64))
	if len(msgs) > 0 {
		cursor = msgs[0].ID
	}
	out := make([]LogEntry, 0, min(len(msgs), limit))
	for _, m := range msgs {
		e := parseLogEntry(fnID, m)
		if q.Failed && e.Status != task.Failed {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, e)
	}
	slices.Reverse(out)
	return out, cursor, nil
}

// FollowLogs waits up to block for entries of function fnID's log after cursor (from Logs
// or an earlier FollowLogs) and returns them, oldest first, with the next cursor. It holds
// one Redis connection while it waits: callers bound how many follow at once. No entries
// within block: none, the same cursor, nil.
func (s *Store) FollowLogs(ctx context.Context, fnID, cursor string, block time.Duration) ([]LogEntry, string, error) {
	streams, err := s.rdb.XRead(ctx, &redis.XReadArgs{
		Streams: []string{s.k.functionLog(fnID), cursor}, Count: 100, Block: max(block, time.Millisecond),
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, cursor, nil
	}
	if err != nil {
		return nil, cursor, redisErr("follow logs", err)
	}
	var out []LogEntry
	for _, st := range streams {
		for _, m := range st.Messages {
			out = append(out, parseLogEntry(fnID, m))
			cursor = m.ID
		}
	}
	return out, cursor, nil
}

// ValidLogCursor reports whether c is a stream id a client may resume from ("ms-seq").
func ValidLogCursor(c string) bool {
	ms, seq, ok := cutDash(c)
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

func cutDash(c string) (string, string, bool) {
	for i := 0; i < len(c); i++ {
		if c[i] == '-' {
			return c[:i], c[i+1:], i > 0 && i < len(c)-1
		}
	}
	return "", "", false
}

func parseLogEntry(fnID string, m redis.XMessage) LogEntry {
	e := LogEntry{ID: m.ID, FunctionID: fnID}
	if ms, _, ok := cutDash(m.ID); ok {
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			e.Time = time.UnixMilli(n).UTC()
		}
	}
	get := func(f string) string { v, _ := m.Values[f].(string); return v }
	e.TaskID = get(lTask)
	e.Status = task.Status(get(lStatus))
	e.Kind = task.Kind(get(lKind))
	e.Message = get(lMessage)
	if b := get(lStderr); b != "" {
		e.Stderr = []byte(b)
	}
	e.DurationMs, _ = strconv.ParseInt(get(lDuration), 10, 64)
	e.Worker = get(lWorker)
	e.Attempt, _ = strconv.Atoi(get(lAttempt))
	return e
}
