package server

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"faas/task"
)

// Quotas per namespace. The submission rate is a token bucket per namespace in this process
// (with several servers, each allows the rate: divide it among them); the bounds on
// unfinished tasks and module bytes are counted in Redis, so they hold across servers.

var errRateLimited = errors.New("rate limited")

const (
	codeRateLimited   = "rate_limited"
	codeQuotaExceeded = "quota_exceeded"
)

// rateError is a 429 rate_limited with the seconds after which a retry may succeed.
type rateError struct {
	ns    string
	retry time.Duration
	rate  float64
}

func (e *rateError) Error() string {
	return "namespace " + e.ns + " submits more than its quota of " +
		strconv.FormatFloat(e.rate, 'g', -1, 64) + " tasks per second; retry after " +
		strconv.Itoa(retrySeconds(e.retry)) + " s"
}
func (e *rateError) Unwrap() error { return errRateLimited }

func retrySeconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

// quota returns namespace ns's quota.
func (s *Server) quota(ns string) Quota {
	if ring := s.keys.Load(); ring != nil {
		return ring.Quota(ns)
	}
	return s.cfg.DefaultQuota
}

// buckets are the token buckets of the namespaces, created on first use.
type buckets struct {
	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// take takes n tokens of ns's bucket (rate per second, burst tokens at most), or says how
// long until they would be there. A request larger than the burst passes when the bucket
// is full, leaving it in debt: every task counts, and a big batch is not refused forever.
func (b *buckets) take(ns string, n int, rate float64, burst int64, now time.Time) (time.Duration, bool) {
	if rate <= 0 {
		return 0, true
	}
	capacity := float64(burst)
	if capacity <= 0 {
		capacity = max(rate, 1)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[string]*bucket)
	}
	k := b.m[ns]
	if k == nil {
		k = &bucket{tokens: capacity, last: now}
		b.m[ns] = k
	}
	k.tokens = min(capacity, k.tokens+now.Sub(k.last).Seconds()*rate)
	k.last = now
	need := float64(n)
	if k.tokens >= need || (need > capacity && k.tokens >= capacity) {
		k.tokens -= need
		return 0, true
	}
	return time.Duration((min(need, capacity) - k.tokens) / rate * float64(time.Second)), false
}

// admit charges n submissions to the request's namespace.
func (s *Server) admit(ns string, n int) error {
	q := s.quota(ns)
	if wait, ok := s.rates.take(ns, n, q.Rate, q.Burst, time.Now()); !ok {
		return &rateError{ns: ns, retry: wait, rate: q.Rate}
	}
	return nil
}

// nsLimits applies the namespace's ceilings on timeout_ms and memory_mb to limits that have
// their defaults applied: a value asked for above the ceiling is refused (as above the
// server's), a default above it is lowered to it.
func (s *Server) nsLimits(ns string, asked, limits task.Limits) (task.Limits, error) {
	q := s.quota(ns)
	for _, c := range []struct {
		name       string
		asked, max int64
		v          *int64
	}{
		{"timeout_ms", asked.TimeoutMs, q.TimeoutMs, &limits.TimeoutMs},
		{"memory_mb", asked.MemoryMB, q.MemoryMB, &limits.MemoryMB},
	} {
		if c.max <= 0 || *c.v <= c.max {
			continue
		}
		if c.asked > 0 {
			return limits, badRequest("%s %d is above namespace %s's ceiling of %d", c.name, c.asked, ns, c.max)
		}
		*c.v = c.max
	}
	return limits, nil
}

// setRetryAfter adds Retry-After to a rate_limited answer.
func setRetryAfter(w http.ResponseWriter, err error) {
	var re *rateError
	if errors.As(err, &re) {
		w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(re.retry)))
	}
}
