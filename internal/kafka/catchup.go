package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// catchUpRecords is how far a partition must be behind its high-water
// mark for a catchUpConsumer to read what it is behind with franz-go.
const catchUpRecords = 10_000

// catchUpIdle is how long a catch-up read may go without a record before
// sarama takes over where it stands: the last offsets below the
// high-water mark may be gone (compacted) or transaction markers.
const catchUpIdle = time.Second

// catchUpConsumerBuilder builds goka's sarama consumers for a view as
// catchUpConsumers over brokers, with cfg.
func catchUpConsumerBuilder(cfg *sarama.Config) goka.SaramaConsumerBuilder {
	return func(brokers []string, clientID string) (sarama.Consumer, error) {
		c := *cfg
		c.ClientID = clientID
		client, err := sarama.NewClient(brokers, &c)
		if err != nil {
			return nil, err
		}
		consumer, err := sarama.NewConsumerFromClient(client)
		if err != nil {
			return nil, errors.Join(err, client.Close())
		}
		return &catchUpConsumer{Consumer: consumer, client: client, brokers: brokers, clientID: clientID, buffer: c.ChannelBufferSize}, nil
	}
}

// catchUpConsumer is sarama's consumer, except that a partition far
// behind its high-water mark is read up to it with franz-go, and by
// sarama from there on.
//
// goka loads a table through sarama's partition consumers. sarama's
// consumer waits 100 ms after a partition is asked for before its first
// fetch (to gather other partitions into it), then fetches all the
// partitions a broker leads in one request at a time, the next only once
// every partition has handed on what the last one brought. A fresh view of
// a million users waited out the first 100 ms and then the round trips.
// franz-go fetches each partition's next records while the last are
// handed on. What comes after the high-water mark, and every error and
// reconnection then, is sarama's as before (docs/upstream.md).
type catchUpConsumer struct {
	sarama.Consumer
	client   sarama.Client
	brokers  []string
	clientID string
	buffer   int // of each partition's channels, as sarama's
}

func (c *catchUpConsumer) Close() error {
	return errors.Join(c.Consumer.Close(), c.client.Close())
}

// ConsumePartition reads partition of topic from offset as sarama does,
// with franz-go up to the high-water mark if it is catchUpRecords ahead
// or more.
func (c *catchUpConsumer) ConsumePartition(topic string, partition int32, offset int64) (sarama.PartitionConsumer, error) {
	if offset < 0 {
		return c.Consumer.ConsumePartition(topic, partition, offset)
	}
	hwm, err := c.client.GetOffset(topic, partition, sarama.OffsetNewest)
	if err != nil || hwm-offset < catchUpRecords {
		return c.Consumer.ConsumePartition(topic, partition, offset)
	}
	// sarama starts at the high-water mark now, so that its first wait
	// passes while franz-go reads.
	tail, err := c.Consumer.ConsumePartition(topic, partition, hwm)
	if err != nil {
		return nil, err
	}
	reader, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...), kgo.ClientID(c.clientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()), // an offset gone is an error, as in sarama
		kgo.FetchMaxPartitionBytes(128<<10),         // as Consumer.Fetch.Default (see New)
	)
	if err != nil {
		closeTail(tail)
		return nil, fmt.Errorf("read %s/%d: %w", topic, partition, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &catchUpPartition{
		consumer: c, topic: topic, partition: partition, tail: tail, cancel: cancel,
		messages: make(chan *sarama.ConsumerMessage, c.buffer),
		errors:   make(chan *sarama.ConsumerError, c.buffer),
	}
	go p.run(ctx, reader, offset, hwm)
	return p, nil
}

// catchUpPartition is a partition consumer that hands on what franz-go
// reads up to the high-water mark, then what sarama reads.
type catchUpPartition struct {
	consumer  *catchUpConsumer
	topic     string
	partition int32
	messages  chan *sarama.ConsumerMessage
	errors    chan *sarama.ConsumerError
	cancel    context.CancelFunc
	closing   sync.Once
	mu        sync.Mutex               // guards tail, which only run changes
	tail      sarama.PartitionConsumer // sarama's: from the high-water mark, or from where an idle catch-up stood
}

func (p *catchUpPartition) run(ctx context.Context, reader *kgo.Client, offset, hwm int64) {
	defer close(p.errors)
	defer close(p.messages)
	next, err := p.catchUp(ctx, reader, offset, hwm)
	reader.Close()
	switch {
	case ctx.Err() != nil:
	case err != nil:
		p.fail(ctx, err)
	case next < hwm:
		// Idle below the high-water mark: sarama reads on from where the
		// catch-up stands, and the one started at the mark is not needed.
		if err := p.swapTail(next); err != nil {
			p.fail(ctx, err)
		}
	}
	if ctx.Err() == nil {
		p.handOnTail(ctx)
	}
	closeTail(p.current())
}

// closeTail closes a sarama partition consumer, reading its messages and
// errors at once until both end: sarama blocks on either while it is full.
func closeTail(tail sarama.PartitionConsumer) {
	tail.AsyncClose()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range tail.Messages() {
		}
	}()
	for range tail.Errors() {
	}
	<-done
}

// catchUp hands on the records from offset up to hwm that franz-go reads,
// and returns the offset after the last. It stops at hwm, or once it has
// read nothing for catchUpIdle.
func (p *catchUpPartition) catchUp(ctx context.Context, reader *kgo.Client, offset, hwm int64) (next int64, err error) {
	next = offset
	for next < hwm {
		// Each poll has its own deadline: the time the last records took
		// to be handed on is not time the read was idle.
		poll, cancel := context.WithTimeout(ctx, catchUpIdle)
		fetches := reader.PollFetches(poll)
		idle := poll.Err() != nil && fetches.NumRecords() == 0
		cancel()
		if ctx.Err() != nil || idle {
			return next, nil
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				return next, fmt.Errorf("read %s/%d at offset %d: %w", p.topic, p.partition, next, fe.Err)
			}
		}
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			if r.Offset >= hwm {
				return hwm, nil // the rest is sarama's
			}
			if !send(ctx, p.messages, message(r)) {
				return next, nil
			}
			next = r.Offset + 1
		}
	}
	return next, nil
}

// swapTail has sarama read from next instead of from the high-water
// mark. sarama reads a partition once per consumer: the one at the mark
// is closed first; what it read is read again by the new one.
func (p *catchUpPartition) swapTail(next int64) error {
	closeTail(p.current())
	tail, err := p.consumer.Consumer.ConsumePartition(p.topic, p.partition, next)
	if err != nil {
		return fmt.Errorf("read %s/%d from offset %d: %w", p.topic, p.partition, next, err)
	}
	p.mu.Lock()
	p.tail = tail
	p.mu.Unlock()
	return nil
}

// handOnTail hands on what sarama reads until the partition is closed.
func (p *catchUpPartition) handOnTail(ctx context.Context) {
	tail := p.current()
	messages, errs := tail.Messages(), tail.Errors()
	for messages != nil || errs != nil {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-messages:
			if !ok {
				messages = nil
			} else if !send(ctx, p.messages, m) {
				return
			}
		case e, ok := <-errs:
			if !ok {
				errs = nil
			} else if !send(ctx, p.errors, e) {
				return
			}
		}
	}
	<-ctx.Done()
}

// send hands v on to out, unless ctx ends first.
func send[T any](ctx context.Context, out chan<- T, v T) bool {
	select {
	case out <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// fail hands on err and waits to be closed: the channels stay open until
// then, as sarama's do, so that goka reads the error, not their end.
func (p *catchUpPartition) fail(ctx context.Context, err error) {
	send(ctx, p.errors, &sarama.ConsumerError{Topic: p.topic, Partition: p.partition, Err: err})
	<-ctx.Done()
}

// message is r as sarama hands it on.
func message(r *kgo.Record) *sarama.ConsumerMessage {
	m := &sarama.ConsumerMessage{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Offset: r.Offset, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, &sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	return m
}

func (p *catchUpPartition) AsyncClose() { p.closing.Do(p.cancel) }

// Close closes the partition and returns the errors not read yet.
func (p *catchUpPartition) Close() error {
	p.AsyncClose()
	for range p.messages {
	}
	var errs sarama.ConsumerErrors
	for e := range p.errors {
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (p *catchUpPartition) Messages() <-chan *sarama.ConsumerMessage { return p.messages }
func (p *catchUpPartition) Errors() <-chan *sarama.ConsumerError     { return p.errors }

func (p *catchUpPartition) HighWaterMarkOffset() int64 { return p.current().HighWaterMarkOffset() }
func (p *catchUpPartition) Pause()                     { p.current().Pause() }
func (p *catchUpPartition) Resume()                    { p.current().Resume() }
func (p *catchUpPartition) IsPaused() bool             { return p.current().IsPaused() }

func (p *catchUpPartition) current() sarama.PartitionConsumer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tail
}
