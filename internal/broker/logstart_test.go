package broker

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfake's compaction moves the log start up to the first record it keeps,
// and then answers a fetch for a removed offset below it
// OffsetOutOfRange; Kafka answers with the records from the next one
// kept. A reader of the table that lagged behind the removed records (the
// view under load) failed on it. See logstart.go.
func TestKfakeCompactionMovesLogStart(t *testing.T) {
	const table = "table"
	b, err := Start(Config{Listen: "127.0.0.1:0", Count: 1, Dir: t.TempDir(), Table: table, CompactInterval: 50 * time.Millisecond},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close) // after the compaction has stopped
	ctx := compactInBackground(t, b)

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.ListenAddrs()...), kgo.DefaultProduceTopic(table))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = table, 1, 1
	policy := "compact"
	ct.Configs = append(ct.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: "cleanup.policy", Value: &policy})
	create.Topics = append(create.Topics, ct)
	if _, err := create.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	// One key written 20 times, each in a batch of its own: compaction
	// keeps the last one only.
	for range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("user"), Value: []byte("value")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var start int64
	for deadline := time.Now().Add(10 * time.Second); start == 0; time.Sleep(20 * time.Millisecond) {
		starts, _, err := logStarts(ctx, cl, table)
		if err != nil {
			t.Fatal(err)
		}
		if start = starts[0]; start == 0 && time.Now().After(deadline) {
			t.Fatal("no compaction moved the log start within 10s")
		}
	}

	// A reader still at offset 0, which compaction removed.
	_, id, err := logStarts(ctx, cl, table)
	if err != nil {
		t.Fatal(err)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxWaitMillis, fetch.MaxBytes = 100, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = table, id
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	resp, err := fetch.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch answered %d topics", len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch at offset 0 after compaction (log start %d) failed with error code %d, want the records from the log start", start, p.ErrorCode)
	}
	if len(p.RecordBatches) == 0 {
		t.Fatalf("fetch at offset 0 after compaction (log start %d) answered no records", start)
	}
}
