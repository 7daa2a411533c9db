package broker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// writeKeys writes n records of key to topic t, each in a request of its
// own (a batch each), on the brokers of b.
func writeKeys(t *testing.T, b *Embedded, topic, key string, n int) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(b.ListenAddrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for range n {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder("v")}); err != nil {
			t.Fatal(err)
		}
	}
}

// compactInBackground runs b's own compaction of the table until the test
// ends, and fails the test if it failed.
func compactInBackground(t *testing.T, b *Embedded) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.CompactPeriodically(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ctx
}

// logRange returns where partition 0 of topic starts and ends.
func logRange(t *testing.T, b *Embedded, topic string) (start, end int64) {
	t.Helper()
	client, err := sarama.NewClient(b.ListenAddrs(), sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if start, err = client.GetOffset(topic, 0, sarama.OffsetOldest); err != nil {
		t.Fatal(err)
	}
	if end, err = client.GetOffset(topic, 0, sarama.OffsetNewest); err != nil {
		t.Fatal(err)
	}
	return start, end
}

// kfake starts a compacted topic's cleaner timer only when the topic is
// created or altered, not when it reloads it from disk: after a restart
// the table would grow without bound. The broker compacts the table itself
// (CompactPeriodically), reloaded or not.
func TestKfakeCompactionTimerAfterReload(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{Listen: "127.0.0.1:0", Dir: dir, Table: "table", CompactInterval: 50 * time.Millisecond}
	b, err := Start(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic("table", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	writeKeys(t, b, "table", "user", 20)
	b.Close()

	// Reloaded from dir: the compaction runs all the same.
	if b, err = Start(cfg, logger); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close) // after the compaction has stopped
	compactInBackground(t, b)
	writeKeys(t, b, "table", "user", 1)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		start, end := logRange(t, b, "table")
		if end != 21 {
			t.Fatalf("log end %d, want 21", end)
		}
		if start > 0 {
			return // compacted: the records below the last batches are gone
		}
		if time.Now().After(deadline) {
			t.Fatal("the reloaded table was not compacted within 10 s")
		}
	}
}

// kfake compacts a partition by removing its segment files and then
// writing the batches it keeps to new ones: a kill between the two loses
// the partition. The broker backs the table up before each compaction
// and, at start, puts back a partition that ends before its backup.
func TestKfakeCompactionRebuildNotAtomic(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{Listen: "127.0.0.1:0", Dir: dir, Table: "table", CompactInterval: time.Hour}
	b, err := Start(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic("table", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	writeKeys(t, b, "table", "user", 5)
	b.Close()

	// What a kill in the middle of kfake's rebuild leaves: the backup,
	// and the partition without its segment files.
	if err := BackupBeforeCompaction(dir, "table"); err != nil {
		t.Fatal(err)
	}
	parts, err := TablePartitionDirs(dir, "table")
	if err != nil || len(parts) != 1 {
		t.Fatalf("table partitions %v (%v), want one", parts, err)
	}
	for _, pattern := range []string{"*.dat", "*.idx"} {
		files, err := filepath.Glob(filepath.Join(dir, "partitions", parts[0], pattern))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s files of %s: %v (%v)", pattern, parts[0], files, err)
		}
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}

	if b, err = Start(cfg, logger); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, end := logRange(t, b, "table"); end != 5 {
		t.Errorf("log end %d after the restart, want the 5 records the backup held", end)
	}
	if _, err := os.Stat(filepath.Join(dir, CompactionBackup)); !os.IsNotExist(err) {
		t.Errorf("the backup is still there after the restore: %v", err)
	}
}
