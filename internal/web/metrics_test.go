package web

import (
	"clicks/internal/clicks"
	"clicks/internal/metrics"
	"clicks/internal/metrics/metricstest"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

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
	m := metrics.New()
	view := &fakeView{recovered: true, values: map[string]any{"user-3": &clicks.User{Clicks: 1}}}
	h := NewRouter(view, m, slog.New(slog.DiscardHandler))
	for _, r := range []struct{ method, path string }{
		{"GET", "/user-3"}, {"GET", "/user-3"}, {"HEAD", "/user-3"}, {"GET", "/nobody"},
		{"GET", "/a/b"}, {"PUT", "/user-3"}, {"BREW", "/user-3"}, {"GET", "/-/healthy"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	families := metricstest.Scrape(t, recorderGet(h))
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
		if got, ok := metricstest.Value(families, "clicks_http_requests_total", tc.labels...); !ok || got != tc.want {
			t.Errorf("clicks_http_requests_total%v = %v (found %v), want %v", tc.labels, got, ok, tc.want)
		}
	}
	if n, ok := metricstest.Value(families, "clicks_http_request_duration_seconds", "route", "/{key}"); !ok || n != 4 {
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
