package repair

import (
	"errors"
	"fmt"

	"clicks/internal/kafka"

	"github.com/IBM/sarama"
)

// Append writes the records (key, value) to partition of topic, in their
// order, and returns the partition's log end after them.
func Append(k *kafka.Config, topic string, partition int32, records [][2][]byte) (end int64, err error) {
	cfg := k.Sarama()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	producer, err := sarama.NewSyncProducer(k.Brokers, cfg)
	if err != nil {
		return 0, fmt.Errorf("producer to write to %s/%d: %w", topic, partition, err)
	}
	defer func() {
		if cerr := producer.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close producer that wrote to %s/%d: %w", topic, partition, cerr))
		}
	}()
	for len(records) > 0 {
		batch := make([]*sarama.ProducerMessage, min(len(records), 1000))
		for i := range batch {
			batch[i] = &sarama.ProducerMessage{Topic: topic, Partition: partition,
				Key: sarama.ByteEncoder(records[i][0]), Value: sarama.ByteEncoder(records[i][1])}
		}
		if err := producer.SendMessages(batch); err != nil {
			return 0, fmt.Errorf("write to %s/%d: %w", topic, partition, err)
		}
		end = batch[len(batch)-1].Offset + 1
		records = records[len(batch):]
	}
	return end, nil
}

// Fill writes records marked with header, without key or value, into
// partition of topic until its log ends at upTo, so that the offsets
// below upTo are never given to other records. It returns how many it
// wrote.
func Fill(k *kafka.Config, client sarama.Client, topic string, partition int32, upTo int64, header string) (written int64, err error) {
	cfg := k.Sarama()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	producer, err := sarama.NewSyncProducer(k.Brokers, cfg)
	if err != nil {
		return 0, fmt.Errorf("producer to fill %s/%d: %w", topic, partition, err)
	}
	defer func() {
		if cerr := producer.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close producer that filled %s/%d: %w", topic, partition, cerr))
		}
	}()
	for {
		end, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
		if err != nil {
			return written, fmt.Errorf("log end of %s/%d: %w", topic, partition, err)
		}
		if end >= upTo {
			return written, nil
		}
		batch := make([]*sarama.ProducerMessage, min(upTo-end, 1000))
		for i := range batch {
			batch[i] = &sarama.ProducerMessage{Topic: topic, Partition: partition,
				Headers: []sarama.RecordHeader{{Key: []byte(header)}}}
		}
		if err := producer.SendMessages(batch); err != nil {
			return written, fmt.Errorf("fill %s/%d: %w", topic, partition, err)
		}
		written += int64(len(batch))
	}
}
