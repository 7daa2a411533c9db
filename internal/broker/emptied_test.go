package broker

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// kfake reloads a partition whose every segment retention deleted with
// its log end at 0 instead of where it ended: with no segment file it
// does not read the partition's snapshot (persist.go, loadPartition: "if
// snapData != nil && len(segFiles) > 0"). New records then take offsets
// that were read before. clicks fills the partition up to the end it
// recorded (app: lostEnd.heldStart, docs/upstream.md). When this test
// fails, kfake keeps the end, and the filling can go.
func TestKfakeForgetsTheEndOfAPartitionRetentionEmptied(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{Listen: "127.0.0.1:0", Count: 1, Dir: dir, Table: "table", CompactInterval: time.Minute}
	b, err := Start(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic("t", 1, map[string]string{"retention.ms": "1000"}); err != nil {
		t.Fatal(err)
	}
	scfg := sarama.NewConfig()
	scfg.Producer.Return.Successes = true
	producer, err := sarama.NewSyncProducer(b.ListenAddrs(), scfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		// A week old: retention deletes it at once.
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "t", Value: sarama.StringEncoder("v"), Timestamp: time.Now().Add(-8 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	producer.Close()
	b.ApplyRetention()
	end := func(b *Embedded) int64 {
		t.Helper()
		client, err := sarama.NewClient(b.ListenAddrs(), sarama.NewConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		o, err := client.GetOffset("t", 0, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if got := end(b); got != 10 {
		t.Fatalf("log end %d after retention, want 10", got)
	}
	b.Close()
	for restart := 1; restart <= 2; restart++ {
		if b, err = Start(cfg, logger); err != nil {
			t.Fatal(err)
		}
		got := end(b)
		b.Close()
		if got == 0 {
			t.Logf("restart %d: log end 0, not 10: kfake forgot it", restart)
			return
		}
	}
	t.Fatal("the log end stayed 10 over two restarts: kfake keeps it now; the filling of app.lostEnd.heldStart can go (docs/upstream.md)")
}
