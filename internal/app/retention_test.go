package app

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"clicks/internal/broker"
	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/metrics/metricstest"

	"github.com/IBM/sarama"
)

// The embedded broker keeps about -broker-keep-mib of clicks and deletes
// the oldest beyond it, a segment at a time, so its disk and memory stay
// bounded however long it runs; the counts keep every click.
func TestEmbeddedBrokerKeepsWhatItIsTold(t *testing.T) {
	if testing.Short() {
		t.Skip("retention test skipped with -short")
	}
	dir := t.TempDir()
	in := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false", "-broker-keep-mib", "1", "-compact-interval", "200ms")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stderr:\n%s", in.LastLines(40))
		}
	})
	// About 19 MiB in one-click batches: more than it may keep even
	// with a segment more in every partition.
	const n = 150_000
	clickstest.WriteOneClickBatches(t, in.Brokers[0], n)
	in.WaitForTotal(n)
	logDir := filepath.Join(dir, "broker")
	var kept, disk int64
	// What it may keep, and in each partition at most one segment more:
	// the one being written is never deleted.
	limit := int64(1<<20 + clicks.DefaultPartitions*broker.SegmentBytes)
	clickstest.WaitFor(t, 30*time.Second, fmt.Sprintf("the broker to keep fewer than %d clicks in at most %d bytes", n, limit), func() (bool, string) {
		kept, disk = clicksKept(t, in.Brokers[0]), topicBytes(t, logDir, string(clicks.Topic))
		return kept < n && disk <= limit, fmt.Sprintf("%d clicks in %d bytes", kept, disk)
	})
	t.Logf("kept %d of %d clicks in %d bytes of user-clicks", kept, n, disk)
	for i := range 10 {
		if got := in.Clicks(fmt.Sprintf("user-%d", i)); got != n/10 {
			t.Errorf("user-%d has %d clicks, want %d: the counts must keep what the log deleted", i, got, n/10)
		}
	}
}

// Clicks the broker deletes while the processor is stopped are lost: the
// processor resumes at the log start. When it starts it says how many it
// lost, in a log line and a metric, and every other click is counted:
// served plus reported is what was written.
func TestClicksDeletedBeforeCountedAreReported(t *testing.T) {
	if testing.Short() {
		t.Skip("retention test skipped with -short")
	}
	dir := t.TempDir()
	args := []string{"-data", dir, "-emit=false", "-broker-keep-mib", "1", "-compact-interval", "200ms"}
	in := clickstest.StartInProcess(t, Run, nil, args...)
	const before, while = 1_000, 50_000
	clickstest.WriteOneClickBatches(t, in.Brokers[0], before)
	in.WaitForTotal(before)
	in.Stop()

	// The broker alone, while the processor is stopped.
	broker := clickstest.StartInProcess(t, Run, nil, append(args, "-process=false", "-serve=false")...)
	clickstest.WriteOneClickBatches(t, broker.Brokers[0], while)
	clickstest.WaitFor(t, 30*time.Second, "the broker to delete clicks", func() (bool, string) {
		kept := clicksKept(t, broker.Brokers[0])
		return kept < while, fmt.Sprintf("it keeps %d of %d", kept, while)
	})
	broker.Stop()

	in = clickstest.StartInProcess(t, Run, nil, args...)
	reported := 0
	for _, m := range regexp.MustCompile(`msg="clicks were deleted before they were counted[^\n]* clicks=(\d+)`).FindAllStringSubmatch(in.Log(), -1) {
		n, _ := strconv.Atoi(m[1])
		reported += n
	}
	if reported == 0 {
		t.Fatalf("no loss reported at start:\n%s", in.Log())
	}
	in.WaitForTotal(before + while - reported)
	if got, _ := metricstest.Value(metricstest.Scrape(t, in.Get), "clicks_deleted_uncounted_total"); got != float64(reported) {
		t.Errorf("clicks_deleted_uncounted_total = %v, want %d", got, reported)
	}
	t.Logf("%d of %d clicks deleted before they were counted", reported, before+while)
}

// topicBytes is the size of the embedded broker's log of topic under dir.
func topicBytes(t testing.TB, dir, topic string) int64 {
	t.Helper()
	parts, err := filepath.Glob(filepath.Join(dir, "*", topic+"-*"))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range parts {
		total += dirBytes(t, p)
	}
	return total
}

// clicksKept is how many records user-clicks holds, over all partitions.
func clicksKept(t testing.TB, addr string) int64 {
	t.Helper()
	client, err := sarama.NewClient([]string{addr}, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	partitions, err := client.Partitions(string(clicks.Topic))
	if err != nil {
		t.Fatal(err)
	}
	var kept int64
	for _, part := range partitions {
		oldest, err := client.GetOffset(string(clicks.Topic), part, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		newest, err := client.GetOffset(string(clicks.Topic), part, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		kept += newest - oldest
	}
	return kept
}

// dirBytes is the size of the files under dir.
func dirBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}
