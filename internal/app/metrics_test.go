package app

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"clicks/internal/clickstest"
	"clicks/internal/metrics/metricstest"

	dto "github.com/prometheus/client_model/go"
)

// The whole program: the processed counter and the served clicks match
// the clicks sent.
func TestMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	in := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-emit=false")
	keys := clickstest.Keys(3)
	want := map[string]int{keys[0]: 3, keys[1]: 5, keys[2]: 7}
	sendClicks(t, in.Brokers, want)
	for k, n := range want {
		in.WaitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
	}

	check := map[string]float64{
		"clicks_processed_total":  15,
		"clicks_served":           15,
		"clicks_view_users":       3,
		"clicks_emitted_total":    0,
		"clicks_view_lag_records": 0,
		"clicks_view_recovered":   1,
	}
	var families map[string]*dto.MetricFamily
	clickstest.WaitFor(t, 15*time.Second, "the metrics to match the clicks sent", func() (bool, string) {
		families = metricstest.Scrape(t, in.Get)
		bad := []string{}
		for name, v := range check {
			if got, ok := metricstest.Value(families, name); !ok || got != v {
				bad = append(bad, fmt.Sprintf("%s = %v (found %v), want %v", name, got, ok, v))
			}
		}
		return len(bad) == 0, "\n" + strings.Join(bad, "\n")
	})
	if got, ok := metricstest.Value(families, "clicks_http_requests_total", "route", "/{key}", "code", "200"); !ok || got < 3 {
		t.Errorf("GET /{key} answered 200 %v times by the metrics, want at least 3", got)
	}
	for _, name := range []string{"clicks_processor_lag_records", "clicks_processor_recovered", "clicks_view_recovery_progress", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := families[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
}
