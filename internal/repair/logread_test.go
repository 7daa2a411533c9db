package repair

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"clicks/internal/kafka"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fakeCluster starts an in-process broker with topic (one partition).
func fakeCluster(t *testing.T, topic string) *kafka.Config {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return kafka.New(c.ListenAddrs(), 1, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func fakeClient(t *testing.T, k *kafka.Config, cfg *sarama.Config) sarama.Client {
	t.Helper()
	client, err := sarama.NewClient(k.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// Retention deletes records while Scan reads them: the next fetch is
// below the log start. Scan must read on from the new log start, each
// record once (sarama's consumer, which Scan used before, closed its
// channels then, and a nil record was read from them: a panic).
func TestScanOffsetOutOfRangeMidway(t *testing.T) {
	const topic, n, deleteTo = "scan", 100, 50
	k := fakeCluster(t, topic)
	// 50 KiB a record: a fetch (1 MiB) returns about 20.
	value := make([]byte, 50<<10)
	for i := range n {
		if _, err := Append(k, topic, 0, [][2][]byte{{[]byte(strconv.Itoa(i)), value}}); err != nil {
			t.Fatal(err)
		}
	}
	client := fakeClient(t, k, k.Sarama())
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	err = Scan(client, topic, 0, 0, n, func(m *sarama.ConsumerMessage) bool {
		if len(seen) == 0 {
			if err := admin.DeleteRecords(topic, map[int32]int64{0: deleteTo}); err != nil {
				t.Errorf("delete records: %v", err)
			}
		}
		if string(m.Key) != strconv.FormatInt(m.Offset, 10) {
			t.Errorf("offset %d holds record %s", m.Offset, m.Key)
		}
		seen[m.Offset]++
		return true
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	for o := int64(deleteTo); o < n; o++ {
		if seen[o] != 1 {
			t.Errorf("offset %d seen %d times, want once", o, seen[o])
		}
	}
	if len(seen) == n {
		t.Errorf("read all %d records: the deletion came after the scan, nothing was tested", n)
	}
	t.Logf("read %d records, %d of them before the deletion was met", len(seen), len(seen)-(n-deleteTo))
}

// A transactional producer ends its writes with a commit marker, a
// control record sarama never delivers: a read up to the log end must
// end at the last record, not wait for the marker until it gives up.
func TestScanEndsBeforeCommitMarkers(t *testing.T) {
	const topic, n = "txn", 10
	k := fakeCluster(t, topic)
	producer, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.TransactionalID("scan-test"),
		kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx := context.Background()
	for range 2 {
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n / 2 {
			if err := producer.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	client := fakeClient(t, k, k.Sarama())
	end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	if end != n+2 {
		t.Fatalf("log end %d, want %d records and 2 commit markers", end, n+2)
	}
	read := 0
	start := time.Now()
	if err := Scan(client, topic, 0, 0, end, func(*sarama.ConsumerMessage) bool { read++; return true }); err != nil {
		t.Fatalf("scan up to the commit marker: %v", err)
	}
	if read != n {
		t.Errorf("read %d records, want %d", read, n)
	}
	t.Logf("read %d records and 2 markers in %v", read, time.Since(start).Round(time.Millisecond))
	read = 0
	if err := ReadPartition(client, topic, 0, func(int32, []byte, []byte) { read++ }); err != nil {
		t.Fatalf("read partition up to the commit marker: %v", err)
	}
	if read != n {
		t.Errorf("ReadPartition read %d records, want %d", read, n)
	}
}
