package clickstest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"clicks/internal/clicks"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RecordsPerKey reads topic from the oldest offset to the newest with a
// plain sarama consumer and counts the records of each key.
func RecordsPerKey(t testing.TB, brokers []string, topic string) map[string]int {
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

// WriteOneClickBatches writes n clicks for user-0..9 to user-clicks, each
// in the partition the processor counts it in and in a request, and so a
// batch, of its own, as the program's emitter writes them at its default
// rate; five requests in flight keep it fast.
func WriteOneClickBatches(t testing.TB, addr string, n int) {
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

// StartForeignWriter writes clicks with franz-go's default partitioner
// (murmur2, as the Java client: most land outside goka's partition of
// their key) for user-0 … user-9 and ten keys of its own, one a
// millisecond, until the returned stop is called. Writes go on through
// broker restarts; whatever their outcome, the topic is what counts.
func StartForeignWriter(t testing.TB, brokers []string) (stop func()) {
	t.Helper()
	return StartAckedWriter(t, brokers).Stop
}

// AckedWriter is the foreign writer (franz-go: acks=all, idempotent) that
// also counts, per key, the clicks the brokers acknowledged.
type AckedWriter struct {
	mu    sync.Mutex
	acked map[string]int
	stop  func()
}

// StartAckedWriter starts the foreign writer of StartForeignWriter; it is
// stopped when the test ends, if not before.
func StartAckedWriter(t testing.TB, brokers []string) *AckedWriter {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordDeliveryTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	w := &AckedWriter{acked: map[string]int{}}
	keys := Keys(10)
	for i := range 10 {
		keys = append(keys, fmt.Sprintf("user-%d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			key := keys[i%len(keys)]
			cl.Produce(ctx, &kgo.Record{Topic: string(clicks.Topic), Key: []byte(key), Value: []byte("a click from franz-go")}, func(_ *kgo.Record, err error) {
				if err == nil {
					w.mu.Lock()
					w.acked[key]++
					w.mu.Unlock()
				}
			})
		}
	}()
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			flush, cancelFlush := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancelFlush()
			if err := cl.Flush(flush); err != nil {
				t.Logf("acked writer: flush: %v", err)
			}
			cl.Close()
		})
	}
	t.Cleanup(w.stop)
	return w
}

// Stop stops the writing and waits for the outcome of every write.
func (w *AckedWriter) Stop() { w.stop() }

// CheckAckedInTopic stops the writer and fails the test for every key of
// which the topic holds fewer clicks than the cluster acknowledged to w.
func (w *AckedWriter) CheckAckedInTopic(t testing.TB, inTopic map[string]int) {
	t.Helper()
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	total := 0
	for k, n := range w.acked {
		total += n
		if inTopic[k] < n {
			t.Errorf("%s: %d clicks acknowledged, %d in %s: acknowledged clicks lost", k, n, inTopic[k], clicks.Topic)
		}
	}
	if total == 0 {
		t.Error("the cluster acknowledged no click of the writer: the test tested nothing")
	}
	t.Logf("%d clicks acknowledged to franz-go, all in the topic", total)
}
