package server

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"faas/internal/metrics"
	"faas/store"
	"faas/task"
)

// unmatchedRoute is the route label of requests no route matched (404, 405): raw paths
// would make the label unbounded.
const unmatchedRoute = "unmatched"

// serverMetrics are the server's metrics, served at GET /metrics (listed in docs/API.md).
type serverMetrics struct {
	requests  *prometheus.CounterVec   // route, code
	duration  *prometheus.HistogramVec // route
	submitted prometheus.Counter
	cancelled *prometheus.CounterVec // was (QUEUED, RUNNING)
}

// newServerMetrics registers the server's metrics on reg, and a collector that reads the
// queue length from st at scrape time. A name already registered with other labels panics,
// as prometheus.MustRegister does: that is a bug of the caller's, not a runtime condition.
func newServerMetrics(reg prometheus.Registerer, st *store.Store) *serverMetrics {
	m := &serverMetrics{
		requests: must(metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faas_http_requests_total",
			Help: "HTTP requests answered, by route template and status code.",
		}, []string{"route", "code"}))),
		duration: must(metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "faas_http_request_duration_seconds",
			Help: "Time to answer an HTTP request, by route template (long polls included).",
			// Up to the longest ?wait= (30 s by default).
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}))),
		submitted: must(metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faas_tasks_submitted_total",
			Help: "Tasks submitted through /execute_function and /execute_batch.",
		}))),
		cancelled: must(metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faas_tasks_cancelled_total",
			Help: "Tasks cancelled through /tasks/{id}/cancel and /tasks/cancel, by the status they had (QUEUED, RUNNING).",
		}, []string{"was"}))),
	}
	m.cancelled.WithLabelValues(string(task.Queued))
	m.cancelled.WithLabelValues(string(task.Running))
	must(metrics.Register(reg, newQueueCollector(st)))
	return m
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// instrument counts and times the requests h answers under route (a template).
func (m *serverMetrics) instrument(route string, h http.Handler) http.Handler {
	l := prometheus.Labels{"route": route}
	return promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(l),
		promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(l), h))
}

// queueScrapeTimeout bounds the Redis read of a scrape: an unreachable Redis must not
// make the scraper time out on the whole target.
const queueScrapeTimeout = 2 * time.Second

// queueCollector reads the queue length from Redis when scraped. When Redis does not
// answer, the scrape still succeeds: faas_queue_length is left out and faas_redis_up is 0.
type queueCollector struct {
	st       *store.Store
	queueLen *prometheus.Desc
	up       *prometheus.Desc
}

func newQueueCollector(st *store.Store) *queueCollector {
	return &queueCollector{
		st: st,
		queueLen: prometheus.NewDesc("faas_queue_length",
			"QUEUED tasks waiting for a dispatcher, read from Redis at scrape time.", nil, nil),
		up: prometheus.NewDesc("faas_redis_up",
			"1 if this scrape read the queue length from Redis, 0 if Redis did not answer.", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queueLen
	ch <- c.up
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueScrapeTimeout)
	defer cancel()
	n, err := c.st.QueueLen(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.queueLen, prometheus.GaugeValue, float64(n))
}
