package app

import (
	"testing"

	"clicks/internal/cache"
)

// The embedded broker's soft memory limit comes with the small memtables
// it was measured with; GOMEMLIMIT or a cluster of the user's own leaves
// both to the user, and the table caches recover at full speed.
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
		limit      int64
		memtable   cache.Memtable
	}{
		{"embedded broker", nil, "", embeddedMemoryLimit, cache.SmallMemtable},
		{"embedded broker, GOMEMLIMIT set", nil, "1GiB", 0, cache.LargeMemtable},
		{"a cluster", []string{"127.0.0.1:9092"}, "", 0, cache.LargeMemtable},
	} {
		limit, memtable := memoryBudget(config{brokers: tc.brokers}, env(tc.gomemlimit))
		if limit != tc.limit || memtable != tc.memtable {
			t.Errorf("%s: limit %d, memtable %d; want %d, %d", tc.name, limit, memtable, tc.limit, tc.memtable)
		}
	}
}
