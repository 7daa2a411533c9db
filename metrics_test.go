package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the metrics h serves, parsed.
func scrape(t *testing.T, get func(path string) (int, string, error)) map[string]*dto.MetricFamily {
	t.Helper()
	status, body, err := get("/-/metrics")
	if err != nil || status != 200 {
		t.Fatalf("GET /-/metrics: %d %v", status, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	return families
}

// metricValue returns the value of the sample of name whose labels
// include labels (name=value pairs), and whether there is one.
func metricValue(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := families[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func recorderGet(h http.Handler) func(string) (int, string, error) {
	return func(path string) (int, string, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String(), nil
	}
}

// Requests are counted by the route's template and the status code,
// never by the path, so users do not become label values.
func TestRequestMetricsByRoute(t *testing.T) {
	m := newClickMetrics()
	view := &fakeView{recovered: true, values: map[string]any{"user-3": &user{Clicks: 1}}}
	h := newRouter(view, &ops{metrics: m}, slog.New(slog.DiscardHandler))
	for _, r := range []struct{ method, path string }{
		{"GET", "/user-3"}, {"GET", "/user-3"}, {"HEAD", "/user-3"}, {"GET", "/nobody"},
		{"GET", "/a/b"}, {"PUT", "/user-3"}, {"BREW", "/user-3"}, {"GET", "/-/healthy"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	families := scrape(t, recorderGet(h))
	for _, tc := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"route", "/{key}", "code", "200"}, 3},
		{[]string{"route", "/{key}", "code", "404"}, 1},
		{[]string{"route", "unmatched", "code", "404"}, 1},
		{[]string{"route", "unmatched", "code", "405"}, 2},
		{[]string{"route", "/-/healthy", "code", "200"}, 1},
	} {
		if got, ok := metricValue(families, "clicks_http_requests_total", tc.labels...); !ok || got != tc.want {
			t.Errorf("clicks_http_requests_total%v = %v (found %v), want %v", tc.labels, got, ok, tc.want)
		}
	}
	if n, ok := metricValue(families, "clicks_http_request_duration_seconds", "route", "/{key}"); !ok || n != 4 {
		t.Errorf("latency histogram of /{key} has %v samples (found %v), want 4", n, ok)
	}
	for _, f := range families["clicks_http_requests_total"].GetMetric() {
		for _, l := range f.GetLabel() {
			if l.GetName() == "route" && strings.Contains(l.GetValue(), "user-3") {
				t.Errorf("a user key became a label value: %v", f)
			}
		}
	}
	if _, ok := families["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
}

// The whole program: the processed counter and the served clicks match
// the clicks sent.
func TestMetricsEndToEnd(t *testing.T) {
	in := startClicks(t, nil, "-data", t.TempDir(), "-emit=false")
	keys := testKeys(3)
	want := map[string]int{keys[0]: 3, keys[1]: 5, keys[2]: 7}
	sendClicks(t, in.brokers, want)
	for k, n := range want {
		in.waitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
	}

	check := map[string]float64{
		"clicks_processed_total":  15,
		"clicks_served":           15,
		"clicks_view_users":       3,
		"clicks_emitted_total":    0,
		"clicks_view_lag_records": 0,
		"clicks_view_recovered":   1,
	}
	deadline := time.Now().Add(15 * time.Second)
	var families map[string]*dto.MetricFamily
	for {
		families = scrape(t, in.get)
		bad := []string{}
		for name, v := range check {
			if got, ok := metricValue(families, name); !ok || got != v {
				bad = append(bad, fmt.Sprintf("%s = %v (found %v), want %v", name, got, ok, v))
			}
		}
		if len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics do not match the clicks sent:\n%s", strings.Join(bad, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, ok := metricValue(families, "clicks_http_requests_total", "route", "/{key}", "code", "200"); !ok || got < 3 {
		t.Errorf("GET /{key} answered 200 %v times by the metrics, want at least 3", got)
	}
	for _, name := range []string{"clicks_processor_lag_records", "clicks_processor_recovered", "clicks_view_recovery_progress", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := families[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
}
