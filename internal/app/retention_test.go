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
	in := startClicks(t, nil, "-data", dir, "-emit=false", "-broker-keep-mib", "1", "-compact-interval", "200ms")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stderr:\n%s", lastLines(in.stderr.String(), 40))
		}
	})
	// About 19 MiB in one-click batches: more than it may keep even
	// with a segment more in every partition.
	const n = 150_000
	writeOneClickBatches(t, in.brokers[0], n)
	waitForUserTotal(t, in, n)
	logDir := filepath.Join(dir, "broker")
	var kept, disk int64
	// What it may keep, and in each partition at most one segment more:
	// the one being written is never deleted.
	limit := int64(1<<20 + clicks.DefaultPartitions*broker.SegmentBytes)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		kept, disk = clicksKept(t, in.brokers[0]), topicBytes(t, logDir, string(clicks.Topic))
		if kept < n && disk <= limit {
			break
		}
	}
	if kept >= n || disk > limit {
		t.Fatalf("the broker keeps %d of %d clicks in %d bytes, want fewer clicks in at most %d bytes", kept, n, disk, limit)
	}
	t.Logf("kept %d of %d clicks in %d bytes of user-clicks", kept, n, disk)
	for i := range 10 {
		if got := in.clicks(fmt.Sprintf("user-%d", i)); got != n/10 {
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
	in := startClicks(t, nil, args...)
	const before, while = 1_000, 50_000
	writeOneClickBatches(t, in.brokers[0], before)
	waitForUserTotal(t, in, before)
	in.stop()

	// The broker alone, while the processor is stopped.
	broker := startClicks(t, nil, append(args, "-process=false", "-serve=false")...)
	writeOneClickBatches(t, broker.brokers[0], while)
	for deadline := time.Now().Add(30 * time.Second); clicksKept(t, broker.brokers[0]) >= while; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the broker deleted nothing within 30s")
		}
	}
	broker.stop()

	in = startClicks(t, nil, args...)
	reported := 0
	for _, m := range regexp.MustCompile(`msg="clicks were deleted before they were counted[^\n]* clicks=(\d+)`).FindAllStringSubmatch(in.stderr.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		reported += n
	}
	if reported == 0 {
		t.Fatalf("no loss reported at start:\n%s", in.stderr)
	}
	waitForUserTotal(t, in, before+while-reported)
	if got, _ := metricstest.Value(metricstest.Scrape(t, in.get), "clicks_deleted_uncounted_total"); got != float64(reported) {
		t.Errorf("clicks_deleted_uncounted_total = %v, want %d", got, reported)
	}
	t.Logf("%d of %d clicks deleted before they were counted", reported, before+while)
}

// waitForUserTotal waits until the instance serves total clicks over
// all users.
func waitForUserTotal(t *testing.T, in *instance, total int) {
	t.Helper()
	waitForSummary(t, in.url, 2*time.Minute, fmt.Sprintf("%d clicks", total), func(st servedSummary) bool { return st.Total == int64(total) })
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

// writeOneClickBatches writes n clicks for user-0..9 to user-clicks, each
// in the partition the processor counts it in and in a request, and so a
// batch, of its own, as the program's emitter writes them at its default
// rate; five requests in flight keep it fast.
func writeOneClickBatches(t testing.TB, addr string, n int) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Flush.MaxMessages = 1
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForLocal
	cfg.Net.MaxOpenRequests = 5
	client, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	partitions, err := client.Partitions(string(clicks.Topic))
	if err != nil {
		t.Fatal(err)
	}
	p, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	// The first error stops the writing: a test must not hang on a
	// producer that no longer takes messages.
	failed := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			select {
			case <-p.Successes():
			case err := <-p.Errors():
				failed <- err
				return
			}
		}
	}()
	value := sarama.StringEncoder(time.Now().String())
	for i := range n {
		key := fmt.Sprintf("user-%d", i%10)
		msg := &sarama.ProducerMessage{Topic: string(clicks.Topic), Key: sarama.StringEncoder(key),
			Value: value, Partition: clicks.KeyPartition(key, int32(len(partitions)))}
		select {
		case p.Input() <- msg:
		case err := <-failed:
			p.AsyncClose()
			t.Fatalf("write clicks: %v", err)
		}
	}
	select {
	case <-done:
	case err := <-failed:
		p.AsyncClose()
		t.Fatalf("write clicks: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
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
