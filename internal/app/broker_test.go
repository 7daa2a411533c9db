package app

import (
	"clicks/internal/clicks"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// recordsPerKey reads topic from the oldest offset to the newest with a
// plain sarama consumer and counts the records of each key.
func recordsPerKey(t *testing.T, brokers []string, topic string) map[string]int {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Consumer.Return.Errors = true
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatalf("sarama client: %v", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	defer consumer.Close()
	ps, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	n := map[string]int{}
	for _, p := range ps {
		// kfake's compaction moves the log start offset forward, so a
		// read that starts at the oldest offset can lose the race with
		// it; then start again.
		for attempt := 0; ; attempt++ {
			part := map[string]int{}
			err := readPartition(client, consumer, topic, p, part)
			if err == nil {
				for k, c := range part {
					n[k] += c
				}
				break
			}
			if !errors.Is(err, sarama.ErrOffsetOutOfRange) && !errors.Is(err, errStalled) || attempt == 5 {
				t.Fatal(err)
			}
			t.Logf("%v; reading it again", err)
		}
	}
	return n
}

// After a restart the embedded broker reloads its log from disk, and kfake
// does not restart its compaction timer then; clicks compacts the table
// itself, so the table keeps about one record per user.
func TestTableCompactedAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := startClicks(t, nil, "-data", dir, "-emit=false", "-serve=false", "-process=false")
	first.stop()

	in := startClicks(t, nil, "-data", dir, "-emit=false", "-compact-interval", "200ms")
	key := testKeys(1)[0]
	total := 0
	// Several rounds put the table updates into several batches; kfake
	// never compacts the last one.
	for _, n := range []int{20, 20, 1} {
		sendClicks(t, in.brokers, map[string]int{key: n})
		total += n
		in.waitForBody("/"+key, fmt.Sprintf(`{"Clicks":%d}`, total), 30*time.Second)
	}

	deadline := time.Now().Add(20 * time.Second)
	var records int
	for time.Now().Before(deadline) {
		if records = recordsPerKey(t, in.brokers, string(clicks.Table))[key]; records <= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if records > 2 {
		t.Fatalf("table still holds %d records for %s after compaction, want at most 2", records, key)
	}
	// Compaction keeps the latest value.
	in.waitForBody("/"+key, fmt.Sprintf(`{"Clicks":%d}`, total), time.Second)
	if n := recordsPerKey(t, in.brokers, string(clicks.Topic))[key]; n != total {
		t.Errorf("the click stream is not compacted: %d clicks for %s, want %d", n, key, total)
	}
}

// errStalled says a read got no record for 10 s before the end.
var errStalled = errors.New("no record for 10s")

// readPartition reads one partition from the oldest to the newest offset
// and adds up the records of each key in n.
func readPartition(client sarama.Client, consumer sarama.Consumer, topic string, p int32, n map[string]int) (err error) {
	newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("newest offset of %s/%d: %w", topic, p, err)
	}
	oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return fmt.Errorf("oldest offset of %s/%d: %w", topic, p, err)
	}
	if oldest >= newest {
		return nil
	}
	pc, err := consumer.ConsumePartition(topic, p, oldest)
	if err != nil {
		return fmt.Errorf("consume %s/%d: %w", topic, p, err)
	}
	// Not Close: sarama v1.61.1's Close waits for the partition's fetch
	// to end, and after a stalled read (below) that fetch was seen to hang
	// for minutes. The client's Close ends it.
	defer pc.AsyncClose()
	for {
		select {
		case err := <-pc.Errors():
			return fmt.Errorf("read %s/%d: %w", topic, p, err)
		case m := <-pc.Messages():
			n[string(m.Key)]++
			if m.Offset >= newest-1 {
				return nil
			}
		case <-time.After(10 * time.Second):
			return fmt.Errorf("reading %s/%d stalled before offset %d: %w", topic, p, newest-1, errStalled)
		}
	}
}
