package app

import (
	"testing"

	"clicks/internal/cache"
	"clicks/internal/kafka"
)

// The embedded broker's soft memory limit comes with the small memtables
// and bound it was measured with; GOMEMLIMIT or a cluster of the user's
// own leaves the memory to the user, and the table caches recover and the
// record cache runs at full speed.
func TestMemoryBudget(t *testing.T) {
	env := func(limit string) func(string) string {
		return func(key string) string {
			if key == "GOMEMLIMIT" {
				return limit
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name       string
		brokers    []string
		gomemlimit string
		want       budget
	}{
		{"embedded broker", nil, "", budget{embeddedMemoryLimit, cache.SmallMemtable, kafka.SmallUnfinishedBound}},
		{"embedded broker, GOMEMLIMIT set", nil, "1GiB", budget{0, cache.LargeMemtable, kafka.UnfinishedBound}},
		{"a cluster", []string{"127.0.0.1:9092"}, "", budget{0, cache.LargeMemtable, kafka.UnfinishedBound}},
	} {
		if got := memoryBudget(config{brokers: tc.brokers}, env(tc.gomemlimit)); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
