package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"golang.org/x/sync/errgroup"
)

// ReadTopic calls fn with every record of topic that the brokers hold,
// up to the end each partition had when it was asked: in order within a
// partition, the partitions read at once (one after the other, a table
// of a million users took seconds), fn called from one goroutine.
func (k *Cluster) ReadTopic(client sarama.Client, topic string, fn func(partition int32, key, value []byte)) (err error) {
	starts, err := Offsets(client, topic, sarama.OffsetOldest)
	if err != nil {
		return err
	}
	ends, err := Offsets(client, topic, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("consumer of %s: %w", topic, err)
	}
	defer func() { err = errors.Join(err, consumer.Close()) }()
	type record struct {
		p          int32
		key, value []byte
	}
	records := make(chan []record, 2*len(starts))
	done := make(chan struct{})
	defer close(done)
	g := new(errgroup.Group)
	for p, start := range starts {
		g.Go(func() error {
			var batch []record
			flush := func() bool {
				select {
				case records <- batch:
					batch = nil
					return true
				case <-done:
					return false
				}
			}
			err := readPartition(client, consumer, topic, p, start, ends[p], func(p int32, key, value []byte) {
				batch = append(batch, record{p, key, value})
				if len(batch) == 1000 {
					flush()
				}
			})
			if err == nil && len(batch) > 0 {
				flush()
			}
			return err
		})
	}
	read := make(chan error, 1)
	go func() { read <- g.Wait(); close(records) }()
	for batch := range records {
		for _, r := range batch {
			fn(r.p, r.key, r.value)
		}
	}
	return <-read
}

// ReadPartition is ReadTopic for one partition.
func (k *Cluster) ReadPartition(client sarama.Client, topic string, partition int32, fn func(partition int32, key, value []byte)) (err error) {
	start, err := client.GetOffset(topic, partition, sarama.OffsetOldest)
	if err != nil {
		return fmt.Errorf("log start of %s/%d: %w", topic, partition, err)
	}
	end, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("log end of %s/%d: %w", topic, partition, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("consumer of %s: %w", topic, err)
	}
	defer func() { err = errors.Join(err, consumer.Close()) }()
	return readPartition(client, consumer, topic, partition, start, end, fn)
}

// readPartition calls fn with the records of topic/p from start to end.
func readPartition(client sarama.Client, consumer sarama.Consumer, topic string, p int32, start, end int64, fn func(partition int32, key, value []byte)) error {
	return scanPartition(client, consumer, topic, p, start, end, func(m *sarama.ConsumerMessage) bool {
		fn(p, m.Key, m.Value)
		return true
	})
}

// scanIdle is how long a read waits for a record it knows is there
// before it gives up (a broker that stalls), instead of hanging the start.
const scanIdle = 30 * time.Second

// scanProbe is how long a read waits for the next record before it asks
// the broker whether only control records (a transaction's commit or
// abort markers, which sarama never delivers) are left before the end.
const scanProbe = 100 * time.Millisecond

// scanPartition calls fn with the records of topic/p from start up to
// (not including) end, until fn returns false. Control records are not
// records to fn: where only they are left before end, the read is done.
func scanPartition(client sarama.Client, consumer sarama.Consumer, topic string, p int32, start, end int64, fn func(*sarama.ConsumerMessage) bool) (err error) {
	if start >= end {
		return nil
	}
	pc, err := consumer.ConsumePartition(topic, p, start)
	if err != nil {
		return fmt.Errorf("read %s/%d from %d: %w", topic, p, start, err)
	}
	stalled := false
	defer func() {
		if stalled {
			// Not Close: sarama's Close waits for the stalled fetch.
			pc.AsyncClose()
			return
		}
		if cerr := pc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("read %s/%d: %w", topic, p, cerr)
		}
	}()
	idle := time.NewTimer(scanIdle)
	defer idle.Stop()
	probe := time.NewTicker(scanProbe)
	defer probe.Stop()
	next, moved := start, false
	var prober *sarama.Broker
	for {
		select {
		case m, ok := <-pc.Messages():
			if !ok {
				// sarama closes both channels after an error it sent
				// (an offset out of range: retention deleted records
				// meanwhile): the caller's fallback handles it.
				return fmt.Errorf("read %s/%d: consumer stopped at %d: %w", topic, p, next, sarama.ErrOffsetOutOfRange)
			}
			if m.Offset >= end || !fn(m) || m.Offset == end-1 {
				return nil
			}
			next, moved = m.Offset+1, true
			idle.Reset(scanIdle)
		case cerr, ok := <-pc.Errors():
			if !ok {
				return fmt.Errorf("read %s/%d: consumer stopped at %d: %w", topic, p, next, sarama.ErrOffsetOutOfRange)
			}
			return fmt.Errorf("read %s/%d: %w", topic, p, cerr)
		case <-probe.C:
			if moved {
				moved = false
				continue
			}
			if prober == nil {
				if prober, err = probeConn(client, topic, p); err != nil {
					return err
				}
				defer prober.Close()
			}
			done, err := onlyControlLeft(prober, topic, p, next, end)
			if err != nil {
				return err
			}
			if done {
				return nil
			}
		case <-idle.C:
			stalled = true
			return fmt.Errorf("read %s/%d: no record for %v before offset %d", topic, p, scanIdle, end)
		}
	}
}

// probeConn opens a connection of its own to the leader of topic/p: on
// the client's, a request waits behind the consumer's long fetches.
func probeConn(client sarama.Client, topic string, p int32) (*sarama.Broker, error) {
	leader, err := client.Leader(topic, p)
	if err != nil {
		return nil, fmt.Errorf("leader of %s/%d: %w", topic, p, err)
	}
	b := sarama.NewBroker(leader.Addr())
	if err := b.Open(client.Config()); err != nil {
		return nil, fmt.Errorf("connect to %s to look past %s/%d: %w", leader.Addr(), topic, p, err)
	}
	return b, nil
}

// onlyControlLeft asks the partition's leader whether the records of
// topic/p from next up to end are all control records (or none are
// left), which sarama's consumer reads past without a word.
func onlyControlLeft(leader *sarama.Broker, topic string, p int32, next, end int64) (bool, error) {
	// Version 4 (Kafka 0.11): record batches, which mark control records.
	req := &sarama.FetchRequest{Version: 4, MinBytes: 1, MaxBytes: 1 << 20, Isolation: sarama.ReadUncommitted}
	req.AddBlock(topic, p, next, 1<<20, -1)
	resp, err := leader.Fetch(req)
	if err != nil {
		return false, fmt.Errorf("look past %s/%d@%d: %w", topic, p, next, err)
	}
	block := resp.GetBlock(topic, p)
	if block == nil {
		return false, nil
	}
	if !errors.Is(block.Err, sarama.ErrNoError) {
		// The consumer meets the same error and says so.
		return false, nil
	}
	if block.HighWaterMarkOffset <= next {
		return true, nil // nothing left: the end moved down (deleted)
	}
	covered := next
	for _, rs := range block.RecordsSet {
		b := rs.RecordBatch
		if b == nil {
			return false, nil // a legacy message set: no control records
		}
		last := b.FirstOffset + int64(b.LastOffsetDelta)
		if last < next || b.FirstOffset >= end {
			continue
		}
		if !b.Control || b.PartialTrailingRecord {
			return false, nil
		}
		covered = max(covered, last+1)
	}
	return covered >= end, nil
}

// Append writes the records (key, value) to partition of topic, in their
// order, and returns the partition's log end after them.
func (k *Cluster) Append(topic string, partition int32, records [][2][]byte) (end int64, err error) {
	cfg := k.Config()
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
func (k *Cluster) Fill(client sarama.Client, topic string, partition int32, upTo int64, header string) (written int64, err error) {
	cfg := k.Config()
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

// Scan calls fn with the records of partition of topic from offset from
// up to (not including) to, in order, until fn returns false. Records
// deleted meanwhile (retention) are left out: it reads from the log start
// then.
func (k *Cluster) Scan(client sarama.Client, topic string, partition int32, from, to int64, fn func(*sarama.ConsumerMessage) bool) (err error) {
	if from >= to {
		return nil
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("consumer of %s: %w", topic, err)
	}
	defer func() { err = errors.Join(err, consumer.Close()) }()
	err = scanPartition(client, consumer, topic, partition, from, to, fn)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		start, serr := client.GetOffset(topic, partition, sarama.OffsetOldest)
		if serr != nil {
			return errors.Join(err, fmt.Errorf("log start of %s/%d: %w", topic, partition, serr))
		}
		return scanPartition(client, consumer, topic, partition, max(from, start), to, fn)
	}
	return err
}

// Rewind sets the offset group has committed for partition of topic
// back to offset, so that its next member reads on from there. The
// coordinator refuses it while the group has members.
func (k *Cluster) Rewind(client sarama.Client, group, topic string, partition int32, offset int64) error {
	coordinator, err := client.Coordinator(group)
	if err != nil {
		return fmt.Errorf("coordinator of %s: %w", group, err)
	}
	// A commit outside any generation, as a consumer without a group
	// session makes it.
	req := &sarama.OffsetCommitRequest{Version: 2, ConsumerGroup: group,
		ConsumerGroupGeneration: sarama.GroupGenerationUndefined, RetentionTime: -1}
	req.AddBlock(topic, partition, offset, 0, "")
	resp, err := coordinator.CommitOffset(req)
	if err == nil {
		if kerr, ok := resp.Errors[topic][partition]; !ok {
			err = errors.New("no answer for the partition")
		} else if !errors.Is(kerr, sarama.ErrNoError) {
			err = kerr
		}
	}
	if err != nil {
		return fmt.Errorf("rewind %s in %s/%d to %d: %w", group, topic, partition, offset, err)
	}
	return nil
}
