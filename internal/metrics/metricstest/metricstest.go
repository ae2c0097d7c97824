// Package metricstest reads metric values in tests: gathered from a registry, or scraped
// over HTTP from a /metrics endpoint and parsed as a Prometheus server would.
package metricstest

import (
	"context"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are metric families by name.
type Families map[string]*dto.MetricFamily

// Gather collects g.
func Gather(tb testing.TB, g prometheus.Gatherer) Families {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatalf("gathering metrics: %v", err)
	}
	f := make(Families, len(mfs))
	for _, mf := range mfs {
		f[mf.GetName()] = mf
	}
	return f
}

// Scrape GETs url (a /metrics endpoint), which must answer 200 in the text format, and
// parses the answer.
func Scrape(tb testing.TB, url string) Families {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("scraping %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("scraping %s: status %d: %s", url, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		tb.Fatalf("scraping %s: Content-Type %q, want text/plain", url, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	f, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		tb.Fatalf("scraping %s: parsing: %v\n%s", url, err, body)
	}
	return f
}

// find returns the series of name whose labels are exactly labels (name, value pairs).
func (f Families) find(name string, labels []string) (*dto.Metric, bool) {
	mf, ok := f[name]
	if !ok {
		return nil, false
	}
	want := make(map[string]string, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		if labels[i+1] != "" { // an empty value is no label, as Prometheus reads it
			want[labels[i]] = labels[i+1]
		}
	}
	for _, m := range mf.GetMetric() {
		got := make(map[string]string)
		for _, lp := range m.GetLabel() {
			if lp.GetValue() != "" {
				got[lp.GetName()] = lp.GetValue()
			}
		}
		if len(got) != len(want) {
			continue
		}
		same := true
		for k, v := range want {
			if got[k] != v {
				same = false
				break
			}
		}
		if same {
			return m, true
		}
	}
	return nil, false
}

// Value is the value of the counter or gauge series name{labels...}; labels are name,
// value pairs and must be the series' labels exactly. ok is false when there is no such
// series.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	m, ok := f.find(name, labels)
	switch {
	case !ok:
		return 0, false
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// Histogram is the sample count and sum of the histogram series name{labels...}.
func (f Families) Histogram(name string, labels ...string) (count uint64, sum float64, ok bool) {
	m, ok := f.find(name, labels)
	if !ok || m.Histogram == nil {
		return 0, 0, false
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(), true
}

// Want checks counters and gauges: each key of want is name or name{k="v",...} in the
// exposition's syntax, and must be present with that value.
func (f Families) Want(tb testing.TB, want map[string]float64) {
	tb.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name, labels := parseKey(tb, k)
		got, ok := f.Value(name, labels...)
		if !ok {
			tb.Errorf("%s: no such series", k)
			continue
		}
		if got != want[k] {
			tb.Errorf("%s = %v, want %v", k, got, want[k])
		}
	}
}

// parseKey splits `name{a="x",b="y"}` into name and a, x, b, y. Values hold no comma
// or quote.
func parseKey(tb testing.TB, k string) (string, []string) {
	tb.Helper()
	name, rest, ok := strings.Cut(k, "{")
	if !ok {
		return k, nil
	}
	rest = strings.TrimSuffix(rest, "}")
	var labels []string
	for _, kv := range strings.Split(rest, ",") {
		n, v, ok := strings.Cut(kv, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			tb.Fatalf("metric key %q: bad label %q", k, kv)
		}
		labels = append(labels, n, v[1:len(v)-1])
	}
	return name, labels
}
