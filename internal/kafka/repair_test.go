package kafka

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fakeCluster starts an in-process broker with topic (one partition).
func fakeCluster(t *testing.T, topic string) *Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return New(c.ListenAddrs(), 1, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func fakeClient(t *testing.T, k *Cluster, cfg *sarama.Config) sarama.Client {
	t.Helper()
	client, err := sarama.NewClient(k.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// Retention deletes records while Scan reads them: sarama sends the
// out-of-range error (or, without Return.Errors, nothing) and closes
// both channels. Scan must not take the closed channel for a record (a
// nil message: panic) but read on from the new log start.
func TestScanOffsetOutOfRangeMidway(t *testing.T) {
	for _, returnErrors := range []bool{false, true} {
		t.Run("return_errors="+strconv.FormatBool(returnErrors), func(t *testing.T) {
			const topic, n, deleteTo = "scan", 100, 50
			k := fakeCluster(t, topic)
			records := make([][2][]byte, n)
			for i := range records {
				records[i] = [2][]byte{[]byte("k"), []byte(strconv.Itoa(i))}
			}
			// One record a batch, so that a fetch stops after a few.
			for i := range records {
				if _, err := k.Append(topic, 0, records[i:i+1]); err != nil {
					t.Fatal(err)
				}
			}
			cfg := k.Config()
			cfg.Consumer.Return.Errors = returnErrors
			cfg.Consumer.Fetch.Default = 100
			cfg.Consumer.Fetch.Max = 100
			client := fakeClient(t, k, cfg)
			admin, err := sarama.NewClusterAdminFromClient(client)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[int64]int{}
			err = k.Scan(client, topic, 0, 0, n, func(m *sarama.ConsumerMessage) bool {
				if len(seen) == 0 {
					if err := admin.DeleteRecords(topic, map[int32]int64{0: deleteTo}); err != nil {
						t.Errorf("delete records: %v", err)
					}
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
			t.Logf("read %d records, %d of them before the deleted ones were found out", len(seen), len(seen)-(n-deleteTo))
		})
	}
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
	client := fakeClient(t, k, k.Config())
	end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	if end != n+2 {
		t.Fatalf("log end %d, want %d records and 2 commit markers", end, n+2)
	}
	read := 0
	start := time.Now()
	if err := k.Scan(client, topic, 0, 0, end, func(*sarama.ConsumerMessage) bool { read++; return true }); err != nil {
		t.Fatalf("scan up to the commit marker: %v", err)
	}
	if read != n {
		t.Errorf("read %d records, want %d", read, n)
	}
	t.Logf("read %d records and 2 markers in %v", read, time.Since(start).Round(time.Millisecond))
	read = 0
	if err := k.ReadPartition(client, topic, 0, func(int32, []byte, []byte) { read++ }); err != nil {
		t.Fatalf("read partition up to the commit marker: %v", err)
	}
	if read != n {
		t.Errorf("ReadPartition read %d records, want %d", read, n)
	}
}
