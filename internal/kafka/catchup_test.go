package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const catchUpTopic = "catch-up"

// catchUpCluster starts an embedded broker with catchUpTopic (one
// partition) and returns its address and a client that writes to it.
func catchUpCluster(t *testing.T, opts ...kgo.Opt) (string, *kgo.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, catchUpTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	w, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(catchUpTopic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return addr, w
}

// write writes records from to to-1, each keyed and valued by its number.
func write(t *testing.T, w *kgo.Client, from, to int) {
	t.Helper()
	var rs []*kgo.Record
	for i := from; i < to; i++ {
		rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := w.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// newCatchUpConsumer is the consumer a view gets, on addr.
func newCatchUpConsumer(t *testing.T, addr string) sarama.Consumer {
	t.Helper()
	c, err := catchUpConsumerBuilder(New([]string{addr}, 1, 1, nil).Sarama())([]string{addr}, "catch-up-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readValues reads n messages and checks that each is the record its
// offset says, in order from first.
func readValues(t *testing.T, pc sarama.PartitionConsumer, first int64, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for want := first; want < first+int64(n); want++ {
		select {
		case m := <-pc.Messages():
			if m.Offset != want || string(m.Key) != fmt.Sprintf("k%d", want) || string(m.Value) != fmt.Sprintf("v%d", want) {
				t.Fatalf("got offset %d %s=%s, want offset %d k%d=v%d", m.Offset, m.Key, m.Value, want, want, want)
			}
		case e := <-pc.Errors():
			t.Fatalf("error at offset %d: %v", want, e)
		case <-deadline:
			t.Fatalf("nothing at offset %d after 30 s", want)
		}
	}
}

// A partition far behind is read up to its high-water mark by franz-go,
// then by sarama: every record once, in order, also those written after
// the reading began; closing ends both channels.
func TestCatchUpHandsOnEveryRecordOnce(t *testing.T) {
	addr, w := catchUpCluster(t)
	write(t, w, 0, 3*catchUpRecords)
	c := newCatchUpConsumer(t, addr)
	pc, err := c.ConsumePartition(catchUpTopic, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pc.(*catchUpPartition); !ok {
		t.Fatalf("a partition %d records behind is read by %T, not caught up", 3*catchUpRecords-100, pc)
	}
	readValues(t, pc, 100, catchUpRecords)
	write(t, w, 3*catchUpRecords, 3*catchUpRecords+500) // beyond the mark: sarama's
	readValues(t, pc, 100+catchUpRecords, 2*catchUpRecords+400)
	if err := pc.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, open := <-pc.Messages(); open {
		t.Error("messages still open after Close")
	}

	// A partition close to its mark is sarama's alone.
	near, err := c.ConsumePartition(catchUpTopic, 0, 3*catchUpRecords)
	if err != nil {
		t.Fatal(err)
	}
	defer near.Close()
	if _, ok := near.(*catchUpPartition); ok {
		t.Error("a partition 500 records behind is caught up with franz-go")
	}
	readValues(t, near, 3*catchUpRecords, 500)
}

// The last offsets below the high-water mark hold no record (here a
// transaction's commit marker): once franz-go reads nothing for a while,
// sarama reads on from where it stood, and nothing is lost.
func TestCatchUpGoesOnPastOffsetsWithoutRecords(t *testing.T) {
	addr, w := catchUpCluster(t, kgo.TransactionalID("catch-up-test"))
	if err := w.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	write(t, w, 0, 2*catchUpRecords)
	if err := w.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	c := newCatchUpConsumer(t, addr)
	pc, err := c.ConsumePartition(catchUpTopic, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	first := pc.(*catchUpPartition).current()
	readValues(t, pc, 0, 2*catchUpRecords)
	// The marker is at 2*catchUpRecords: sarama takes over there.
	for deadline := time.Now().Add(10 * time.Second); pc.(*catchUpPartition).current() == first; {
		if time.Now().After(deadline) {
			t.Fatal("sarama did not take over 10 s after the last record")
		}
		time.Sleep(10 * time.Millisecond)
	}
	plain, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(catchUpTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	next := 2*catchUpRecords + 1
	write(t, plain, next, next+10)
	readValues(t, pc, int64(next), 10)
}

// An offset the partition no longer holds is an error on Errors(), as
// sarama reports it, and the channels stay open until the partition is
// closed: goka reads the error, not their end.
func TestCatchUpReportsOffsetsGone(t *testing.T) {
	addr, w := catchUpCluster(t)
	write(t, w, 0, 2*catchUpRecords)
	req := kmsg.NewPtrDeleteRecordsRequest()
	topic := kmsg.NewDeleteRecordsRequestTopic()
	topic.Topic = catchUpTopic
	part := kmsg.NewDeleteRecordsRequestTopicPartition()
	part.Offset = 5000
	topic.Partitions = append(topic.Partitions, part)
	req.Topics = append(req.Topics, topic)
	resp, err := req.RequestWith(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatalf("delete records: %v", err)
	}
	c := newCatchUpConsumer(t, addr)
	pc, err := c.ConsumePartition(catchUpTopic, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-pc.Errors():
		if !errors.Is(e.Err, kerr.OffsetOutOfRange) {
			t.Errorf("error %v, want offset out of range", e)
		}
	case m, ok := <-pc.Messages():
		t.Fatalf("message %v (open %v) instead of an error", m, ok)
	case <-time.After(30 * time.Second):
		t.Fatal("no error after 30 s")
	}
	select {
	case m, ok := <-pc.Messages():
		t.Fatalf("message %v (open %v) after the error, before Close", m, ok)
	case <-time.After(100 * time.Millisecond):
	}
	pc.AsyncClose()
	for range pc.Messages() {
	}
	for range pc.Errors() {
	}
}
