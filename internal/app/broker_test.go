package app

import (
	"fmt"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
)

// After a restart the embedded broker reloads its log from disk, and kfake
// does not restart its compaction timer then; clicks compacts the table
// itself, so the table keeps about one record per user.
func TestTableCompactedAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false", "-serve=false", "-process=false")
	first.Stop()

	in := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false", "-compact-interval", "200ms")
	key := clickstest.Keys(1)[0]
	total := 0
	// Several rounds put the table updates into several batches; kfake
	// never compacts the last one.
	for _, n := range []int{20, 20, 1} {
		sendClicks(t, in.Brokers, map[string]int{key: n})
		total += n
		in.WaitForBody("/"+key, fmt.Sprintf(`{"Clicks":%d}`, total), 30*time.Second)
	}

	clickstest.WaitFor(t, 20*time.Second, fmt.Sprintf("compaction to leave at most 2 records for %s in the table", key), func() (bool, string) {
		records := clickstest.RecordsPerKey(t, in.Brokers, string(clicks.Table))[key]
		return records <= 2, fmt.Sprintf("%d records", records)
	})
	// Compaction keeps the latest value.
	in.WaitForBody("/"+key, fmt.Sprintf(`{"Clicks":%d}`, total), time.Second)
	if n := clickstest.RecordsPerKey(t, in.Brokers, string(clicks.Topic))[key]; n != total {
		t.Errorf("the click stream is not compacted: %d clicks for %s, want %d", n, key, total)
	}
}
