package server_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"faas/internal/metrics/metricstest"
	"faas/samples"
	"faas/server"
)

// TestMetrics scrapes GET /metrics after requests: the counters moved by exactly what
// was done, routes are labelled by template, and the queue length is read from Redis.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, server.Config{Metrics: reg})
	fn := e.register(t, "double", samples.DoubleWAT, nil)
	for _, in := range []string{"1", "2", "3"} {
		e.execute(t, fn, []byte(in))
	}
	e.postJSON(t, "/execute_batch", jsonBody(map[string]any{
		"function_id": fn, "payloads": []string{b64([]byte("4")), b64([]byte("5"))}})).want(t, http.StatusCreated)
	e.postJSON(t, "/execute_function", `{"function_id":"`+uuid.NewString()+`","payload":""}`).want(t, http.StatusNotFound)
	e.get(t, "/status/"+uuid.NewString()).want(t, http.StatusNotFound)
	e.get(t, "/status/"+uuid.NewString()).want(t, http.StatusNotFound)
	e.get(t, "/no/such/path").want(t, http.StatusNotFound)
	e.do(t, http.MethodDelete, "/healthz", "", nil).want(t, http.StatusMethodNotAllowed)

	t.Run("after submitting", func(t *testing.T) {
		m := metricstest.Scrape(t, e.url+"/metrics")
		m.Want(t, map[string]float64{
			"faas_tasks_submitted_total": 5, // 3 single, 2 in a batch; the refused one is not
			"faas_queue_length":          5,
			"faas_redis_up":              1,
			`faas_http_requests_total{route="/register_function",code="201"}`: 1,
			`faas_http_requests_total{route="/execute_function",code="201"}`:  3,
			`faas_http_requests_total{route="/execute_function",code="404"}`:  1,
			`faas_http_requests_total{route="/execute_batch",code="201"}`:     1,
			`faas_http_requests_total{route="/status/{task_id}",code="404"}`:  2, // one series for every id
			`faas_http_requests_total{route="unmatched",code="404"}`:          1, // not the raw path
			`faas_http_requests_total{route="unmatched",code="405"}`:          1,
		})
		if n, _, ok := m.Histogram("faas_http_request_duration_seconds", "route", "/execute_function"); !ok || n != 4 {
			t.Errorf("duration of /execute_function: %d observations (found: %v), want 4", n, ok)
		}
		if _, ok := m.Value("faas_http_requests_total", "route", "/metrics", "code", "200"); ok {
			t.Error("the scrape counted itself before it was answered")
		}
	})

	t.Run("after running", func(t *testing.T) {
		e.finish(t, echoOutcome)
		m := metricstest.Scrape(t, e.url+"/metrics")
		m.Want(t, map[string]float64{
			"faas_queue_length":                                     0,
			"faas_tasks_submitted_total":                            5,
			`faas_http_requests_total{route="/metrics",code="200"}`: 1,
		})
	})

	t.Run("shared registry", func(t *testing.T) {
		// A second server on the same registry counts into the same series.
		e2 := newEnv(t, server.Config{Metrics: reg})
		e2.execute(t, e2.register(t, "noop", samples.Noop, nil), nil)
		metricstest.Gather(t, reg).Want(t, map[string]float64{"faas_tasks_submitted_total": 6})
	})

	t.Run("redis down", func(t *testing.T) {
		e.redis.Stop()
		m := metricstest.Scrape(t, e.url+"/metrics") // still 200
		m.Want(t, map[string]float64{"faas_redis_up": 0, "faas_tasks_submitted_total": 6})
		if v, ok := m.Value("faas_queue_length"); ok {
			t.Errorf("faas_queue_length = %v with Redis down; want it left out", v)
		}
	})
}
