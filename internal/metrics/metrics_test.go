package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"clicks/internal/clicks"
	"clicks/internal/metrics/metricstest"

	"github.com/IBM/sarama"
)

// A click whose outcome is unknown is counted as that, not as failed.
func TestEmittedByOutcome(t *testing.T) {
	m := New()
	m.Emitted(nil)
	m.Emitted(errors.New("kafka: client has run out of available brokers"))
	m.Emitted(fmt.Errorf("send: %w", sarama.ErrOutOfOrderSequenceNumber))
	m.Emitted(context.DeadlineExceeded)
	families := metricstest.Scrape(t, func(string) (int, string, error) {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/-/metrics", nil))
		return rec.Code, rec.Body.String(), nil
	})
	for name, want := range map[string]float64{"clicks_emitted_total": 1, "clicks_emit_failed_total": 1, "clicks_emit_unknown_total": 2} {
		if got, ok := metricstest.Value(families, name); !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v", name, got, ok, want)
		}
	}
}

// The help of clicks_skipped_total says what every reason means.
func TestSkipReasonsAllExplained(t *testing.T) {
	for _, reason := range clicks.SkipReasons() {
		if !strings.Contains(skipReasonsHelp, reason+" (") {
			t.Errorf("the help of clicks_skipped_total does not explain %q: %s", reason, skipReasonsHelp)
		}
	}
}
