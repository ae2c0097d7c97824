package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"

	"faas/internal/metrics"
	"faas/task"
)

// dispatchMetrics are counted in the core (core.go), where every mode's outcomes, losses and
// hand-backs pass, so each mode is counted the same way. Listed in docs/API.md.
type dispatchMetrics struct {
	finished    *prometheus.CounterVec   // status, kind
	cpuUnits    *prometheus.CounterVec   // status, kind
	duration    *prometheus.HistogramVec // status
	lost        prometheus.Counter
	released    prometheus.Counter
	claimSize   prometheus.Histogram
	claimErrors prometheus.Counter
	dropped     *prometheus.CounterVec // reason
}

// otherKind labels a failure kind outside the contract's set (a remote worker may send
// anything): the label stays bounded.
const otherKind = "other"

// newDispatchMetrics registers the dispatcher's metrics on reg; a nil reg registers nothing
// (the metrics are counted and never read).
func newDispatchMetrics(reg prometheus.Registerer) (*dispatchMetrics, error) {
	var errs []error
	m := &dispatchMetrics{
		finished: register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faas_dispatch_tasks_finished_total",
			Help: "Tasks this dispatcher ended, by status (COMPLETED, FAILED) and failure kind (empty when COMPLETED).",
		}, []string{"status", "kind"})),
		cpuUnits: register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faas_dispatch_cpu_units_total",
			Help: "CPU units (function entries and loop iterations of guest code) of the tasks this dispatcher ended, by status and failure kind.",
		}, []string{"status", "kind"})),
		duration: register(reg, &errs, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "faas_dispatch_task_duration_seconds",
			Help:    "Sandbox run time of the tasks whose outcome came back, by status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"status"})),
		lost: register(reg, &errs, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faas_dispatch_tasks_lost_total",
			Help: "Tasks whose worker was lost, re-queued with the attempt charged (or FAILED worker_lost when out of attempts).",
		})),
		released: register(reg, &errs, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faas_dispatch_tasks_released_total",
			Help: "Tasks handed back to the queue uncharged: never started, interrupted by shutdown, or taken by a claim whose answer was lost.",
		})),
		claimSize: register(reg, &errs, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "faas_dispatch_claim_batch_size",
			Help:    "Tasks taken by each successful claim (0 when the queue was empty); its _count is the number of claims.",
			Buckets: []float64{0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		})),
		claimErrors: register(reg, &errs, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faas_dispatch_claim_errors_total",
			Help: "Claims that failed (Redis unreachable or too slow); they are retried.",
		})),
		dropped: register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faas_dispatch_messages_dropped_total",
			Help: "Messages (or parts: outcomes, hand-backs) from remote workers refused, by reason: handshake (key refused), unauthorized (key removed), unknown_peer, not_sent (about a task not sent to that connection), bad_outcome (over its limits or of an unknown kind; the task is re-run), over_limit, malformed.",
		}, []string{"reason"})),
	}
	if len(errs) > 0 {
		return nil, errs[0]
	}
	// Every series exists from the start, at 0, so that rates over them are defined.
	m.finished.WithLabelValues(string(task.Completed), "")
	m.cpuUnits.WithLabelValues(string(task.Completed), "")
	for _, k := range task.Kinds {
		m.finished.WithLabelValues(string(task.Failed), string(k))
		m.cpuUnits.WithLabelValues(string(task.Failed), string(k))
	}
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(r)
	}
	m.duration.WithLabelValues(string(task.Completed))
	m.duration.WithLabelValues(string(task.Failed))
	return m, nil
}

// register is metrics.Register collecting its error in errs.
func register[C prometheus.Collector](reg prometheus.Registerer, errs *[]error, c C) C {
	got, err := metrics.Register(reg, c)
	if err != nil {
		*errs = append(*errs, err)
		return c
	}
	return got
}

// outcome counts an outcome an executor handed back.
func (m *dispatchMetrics) outcome(o task.Outcome) {
	kind := ""
	if o.Failure != nil {
		kind = kindLabel(o.Failure.Kind)
	}
	status := string(o.Status())
	m.finished.WithLabelValues(status, kind).Inc()
	m.cpuUnits.WithLabelValues(status, kind).Add(float64(o.CPUUnits))
	m.duration.WithLabelValues(status).Observe(o.Duration.Seconds())
}

// kindLabel bounds the kind label to task.Kinds (and otherKind).
func kindLabel(k task.Kind) string {
	if k.Known() {
		return string(k)
	}
	return otherKind
}
