package repair

import (
	"errors"
	"fmt"
	"time"

	"clicks/internal/kafka"

	"github.com/IBM/sarama"
	"golang.org/x/sync/errgroup"
)

// ReadTopic calls fn with every record of topic that the brokers hold,
// up to the end each partition had when it was asked: in order within a
// partition, the partitions read at once (one after the other, a table
// of a million users took seconds), fn called from one goroutine.
func ReadTopic(client sarama.Client, topic string, fn func(partition int32, key, value []byte)) (err error) {
	starts, err := kafka.Offsets(client, topic, sarama.OffsetOldest)
	if err != nil {
		return err
	}
	ends, err := kafka.Offsets(client, topic, sarama.OffsetNewest)
	if err != nil {
		return err
	}
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
			err := readPartition(client, topic, p, start, ends[p], func(p int32, key, value []byte) {
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
func ReadPartition(client sarama.Client, topic string, partition int32, fn func(partition int32, key, value []byte)) (err error) {
	start, err := client.GetOffset(topic, partition, sarama.OffsetOldest)
	if err != nil {
		return fmt.Errorf("log start of %s/%d: %w", topic, partition, err)
	}
	end, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("log end of %s/%d: %w", topic, partition, err)
	}
	return readPartition(client, topic, partition, start, end, fn)
}

// readPartition calls fn with the records of topic/p from start to end.
func readPartition(client sarama.Client, topic string, p int32, start, end int64, fn func(partition int32, key, value []byte)) error {
	return scanPartition(client, topic, p, start, end, func(m *sarama.ConsumerMessage) bool {
		fn(p, m.Key, m.Value)
		return true
	})
}

// scanIdle is how long a read waits for a record it knows is there
// before it gives up (a broker that stalls), instead of hanging the start.
const scanIdle = 30 * time.Second

// scanFetchBytes is the most a fetch of a scan returns (Kafka returns a
// larger first batch whole).
const scanFetchBytes = 1 << 20

// scanPartition calls fn with the records of topic/p from start up to
// (not including) end, until fn returns false.
//
// It fetches itself rather than with sarama's consumer, which cost
// 100-600 ms a partition at every start (it gathers subscriptions for
// 100 ms, and a closed consumer's long poll held the client's one
// connection for Consumer.MaxWaitTime), and which never delivers control
// records (a transaction's commit markers): a read up to a log ending in
// one waited for it until it gave up. Control records are read past, not
// given to fn. A fetch below the log start (retention deleted records
// meanwhile) returns sarama.ErrOffsetOutOfRange.
func scanPartition(client sarama.Client, topic string, p int32, start, end int64, fn func(*sarama.ConsumerMessage) bool) error {
	next := start
	idleSince := time.Now()
	for next < end {
		block, err := fetchBlock(client, topic, p, next, scanFetchBytes)
		if err != nil {
			return err
		}
		switch {
		case errors.Is(block.Err, sarama.ErrNoError):
		case errors.Is(block.Err, sarama.ErrNotLeaderForPartition), errors.Is(block.Err, sarama.ErrLeaderNotAvailable):
			if err := client.RefreshMetadata(topic); err != nil {
				return fmt.Errorf("read %s/%d at %d: %w", topic, p, next, errors.Join(block.Err, err))
			}
			if time.Since(idleSince) > scanIdle {
				return fmt.Errorf("read %s/%d at %d: no leader for %v: %w", topic, p, next, scanIdle, block.Err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		default:
			return fmt.Errorf("read %s/%d at %d: %w", topic, p, next, block.Err)
		}
		if block.HighWaterMarkOffset <= next {
			return nil // the log ends before end now (it was cut)
		}
		from := next
		for _, rs := range block.RecordsSet {
			more, at := scanRecords(rs, topic, p, next, end, fn)
			next = max(next, at)
			if !more {
				return nil
			}
		}
		if next > from {
			idleSince = time.Now()
			continue
		}
		if time.Since(idleSince) > scanIdle {
			return fmt.Errorf("read %s/%d: no record for %v before offset %d", topic, p, scanIdle, end)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// fetchBlock fetches what partition p of topic holds from offset on, up
// to maxBytes (and the first batch whole), from its leader. The block's
// error is the caller's to look at.
func fetchBlock(client sarama.Client, topic string, p int32, offset int64, maxBytes int32) (*sarama.FetchResponseBlock, error) {
	leader, err := client.Leader(topic, p)
	if err != nil {
		return nil, fmt.Errorf("leader of %s/%d: %w", topic, p, err)
	}
	// Version 4 (Kafka 0.11): record batches, which mark control
	// records; no long poll: the records are there.
	req := &sarama.FetchRequest{Version: 4, MinBytes: 1, MaxBytes: maxBytes, Isolation: sarama.ReadUncommitted}
	req.AddBlock(topic, p, offset, maxBytes, -1)
	resp, err := leader.Fetch(req)
	if err != nil {
		return nil, fmt.Errorf("read %s/%d at %d: %w", topic, p, offset, err)
	}
	block := resp.GetBlock(topic, p)
	if block == nil {
		return nil, fmt.Errorf("read %s/%d at %d: no answer for the partition", topic, p, offset)
	}
	return block, nil
}

// scanRecords calls fn with the records of rs from next up to end. It
// returns whether to read on and the offset after what it read.
func scanRecords(rs *sarama.Records, topic string, p int32, next, end int64, fn func(*sarama.ConsumerMessage) bool) (bool, int64) {
	give := func(offset int64, key, value []byte, headers []*sarama.RecordHeader) bool {
		if offset < next {
			return true
		}
		if offset >= end {
			return false
		}
		next = offset + 1
		return fn(&sarama.ConsumerMessage{Topic: topic, Partition: p, Offset: offset, Key: key, Value: value, Headers: headers})
	}
	if b := rs.RecordBatch; b != nil {
		if b.PartialTrailingRecord {
			return true, next
		}
		if !b.Control {
			for _, r := range b.Records {
				if !give(b.FirstOffset+r.OffsetDelta, r.Key, r.Value, r.Headers) {
					return false, next
				}
			}
		}
		// Past records compaction removed, and control records.
		return true, max(next, b.FirstOffset+int64(b.LastOffsetDelta)+1)
	}
	if ms := rs.MsgSet; ms != nil {
		for _, m := range ms.Messages {
			if m.Msg != nil && !give(m.Offset, m.Msg.Key, m.Msg.Value, nil) {
				return false, next
			}
		}
	}
	return true, next
}

// Scan calls fn with the records of partition of topic from offset from
// up to (not including) to, in order, until fn returns false. Records
// deleted meanwhile (retention) are left out: it reads from the log start
// then.
func Scan(client sarama.Client, topic string, partition int32, from, to int64, fn func(*sarama.ConsumerMessage) bool) (err error) {
	if from >= to {
		return nil
	}
	err = scanPartition(client, topic, partition, from, to, fn)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		start, serr := client.GetOffset(topic, partition, sarama.OffsetOldest)
		if serr != nil {
			return errors.Join(err, fmt.Errorf("log start of %s/%d: %w", topic, partition, serr))
		}
		return scanPartition(client, topic, partition, max(from, start), to, fn)
	}
	return err
}
