package broker

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// While writes are held, a topic held takes only records that all carry
// the filler header, other topics take anything; once open, the held
// topic takes anything.
func TestHeldWritesTakeOnlyFillers(t *testing.T) {
	b, err := Start(Config{Listen: "127.0.0.1:0", Count: 1, Dir: t.TempDir(), Table: "table", CompactInterval: time.Minute,
		Hold: &WriteHold{Filler: "filler", Topics: []string{"held"}}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, topic := range []string{"held", "other"} {
		if err := b.CreateTopic(topic, 1, nil); err != nil {
			t.Fatal(err)
		}
	}

	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 0
	producer, err := sarama.NewSyncProducer(b.ListenAddrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	msg := func(topic string, headers ...string) *sarama.ProducerMessage {
		m := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("v")}
		for _, h := range headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h)})
		}
		return m
	}
	send := func(msgs ...*sarama.ProducerMessage) error { return producer.SendMessages(msgs) }

	if err := send(msg("held", "filler"), msg("held", "x", "filler"), msg("held", "filler")); err != nil {
		t.Errorf("fillers refused: %v", err)
	}
	for _, m := range []*sarama.ProducerMessage{msg("held"), msg("held", "x")} {
		err = send(m)
		var perrs sarama.ProducerErrors
		if !errors.As(err, &perrs) || len(perrs) != 1 || !errors.Is(perrs[0].Err, sarama.ErrKafkaStorageError) {
			t.Errorf("a record that is no filler (headers %v): %v, want it refused with a storage error", m.Headers, err)
		}
	}
	if err := send(msg("other")); err != nil {
		t.Errorf("a topic not held refused: %v", err)
	}
	b.OpenWrites()
	if err := send(msg("held")); err != nil {
		t.Errorf("after OpenWrites: %v", err)
	}
}
