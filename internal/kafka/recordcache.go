package kafka

import (
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// RecordCache is a goka.Producer that writes a group table's changelog
// the way Kafka Streams' record cache does: a table write goes out at once
// while fewer than limit batches are in flight; otherwise it waits, and
// when the oldest batch is acknowledged only the latest value of each
// waiting key goes out, together, as the next batch. Writes to other
// topics (the loop topic) go in the same batches, in the order they came,
// each as it is: goka commits a message's offset as soon as that message's
// own promises finish, so a loop write must not finish before a table
// write made before it, nor a table write before a loop write made before
// it. At a low rate nothing ever waits, so a
// click reaches the changelog as soon as without the cache; under load
// each busy key costs one record per batch instead of one per click.
//
// A write also waits, in the callback that makes it, while the cache holds
// unfinishedBound promises that have not finished: goka keeps every message
// until its promises finish and reads on meanwhile, so without this bound a
// cluster that acknowledges slower than the input arrives (acks=all on
// three brokers, a burst of a million clicks) grew the process by
// gigabytes. The wait ends after boundWait all the same, so that a broker
// that stops answering delays each callback by that much instead of
// holding it until sarama gives up.
//
// Exactly once rests on goka committing a click's input offset only when
// every promise of its callback has finished. So the cache keeps these
// rules:
//
//   - No promise finishes before every write made before it (to the table
//     or the loop topic) is in its topic, whatever its partition (a
//     click's table partition may differ from its input partition):
//     batches are acknowledged in the order they were sent, a batch's
//     promises finish only when all its records are acknowledged and after
//     every earlier batch's have, and a write always goes into the batch
//     that waits, never an earlier one.
//   - A promise whose value was merged into a later one finishes with the
//     record that carried the later value: that record holds this click's
//     count and more, and its offset is the one goka stores as the local
//     table's changelog offset. Promises finish in the order the records
//     were sent, which within a partition is their offset order, so the
//     offset goka stores only rises.
//   - After any failed write, that batch's promises and every later one
//     fail, and so does every write after it: no offset is committed past
//     a value the changelog may lack.
//   - Close sends what waits and waits for it; what it cannot send fails,
//     nothing is dropped.
type RecordCache struct {
	inner goka.Producer
	table string
	limit int // batches in flight at once

	// A write waits while bound promises are unfinished, for at most
	// boundWait.
	bound     int
	boundWait time.Duration

	// finishing is held while promises are finished, taken before mu is
	// released, so that batches finish in the order they left inFlight
	// even when their acknowledgements arrive on different goroutines.
	finishing sync.Mutex

	// outbox carries the batches to send, in the order they were taken:
	// one goroutine sends them, so that records of a later batch never
	// reach a partition before those of an earlier one (the changelog's
	// last record of a key must be its latest value). It holds at most
	// limit batches, as no more are in flight.
	outbox chan *cacheBatch
	sent   chan struct{} // closed when the sender has stopped

	mu       sync.Mutex
	idle     *sync.Cond               // signalled when a batch is done
	inFlight []*cacheBatch            // sent, oldest first
	waiting  map[string]*cachedRecord // the next batch's table records, by key
	order    []*cachedRecord          // the next batch's records, in the order they came
	failed   error                    // the first failed write; every later one fails
	closed   bool

	unfinished int // promises given out and not finished yet
	held       int // writes waiting for room now
}

// Bounds on RecordCache's unfinished promises. goka keeps about a
// kilobyte per message until its promises finish.
const (
	// UnfinishedBound, some 32 MiB, is well above what a cluster leaves
	// unacknowledged at full speed: a bound of 8,192 counted a million
	// users' clicks 1.2 times slower on three brokers.
	UnfinishedBound = 1 << 15
	// SmallUnfinishedBound is for a process whose heap is held to a small
	// soft limit (the embedded broker's, which acknowledges at once): the
	// 24 MiB less counted a million users' clicks from kcat 1.15 times as
	// fast there (docs/performance.md).
	SmallUnfinishedBound = 1 << 13

	boundWait = time.Second
)

// cachedRecord is a table key's latest value, or a write to another topic,
// and the promises it finishes.
type cachedRecord struct {
	topic   string
	key     string
	value   []byte
	headers goka.Headers
	finish  []goka.PromiseFinisher

	msg *sarama.ProducerMessage // once acknowledged
	err error
}

// cacheBatch is records sent together.
type cacheBatch struct {
	records []*cachedRecord
	pending int // not acknowledged yet
}

// NewRecordCache caches the writes to table of inner, with at most limit
// batches in flight (at least 1).
func NewRecordCache(inner goka.Producer, table string, limit int) *RecordCache {
	c := &RecordCache{
		inner: inner, table: table, limit: max(limit, 1),
		bound: UnfinishedBound, boundWait: boundWait,
		waiting: map[string]*cachedRecord{},
	}
	c.idle = sync.NewCond(&c.mu)
	c.outbox = make(chan *cacheBatch, c.limit)
	c.sent = make(chan struct{})
	go c.sender()
	return c
}

// RecordCacheBuilder builds the processor's producer with builder and puts
// a RecordCache for table in front of it, its writes waiting while bound
// promises are unfinished (0: UnfinishedBound).
func RecordCacheBuilder(builder goka.ProducerBuilder, table string, limit, bound int) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		p, err := builder(brokers, clientID, hasher)
		if err != nil {
			return nil, err
		}
		c := NewRecordCache(p, table, limit)
		if bound > 0 {
			c.bound = bound
		}
		return c, nil
	}
}

func (c *RecordCache) Emit(topic, key string, value []byte) *goka.Promise {
	return c.EmitWithHeaders(topic, key, value, nil)
}

func (c *RecordCache) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	p, finish := goka.NewPromiseWithFinisher()
	c.mu.Lock()
	c.waitForRoomLocked()
	switch {
	case c.failed != nil:
		err := c.failed
		c.mu.Unlock()
		finish(nil, fmt.Errorf("an earlier write failed: %w", err))
		return p
	case c.closed:
		c.mu.Unlock()
		finish(nil, errors.New("record cache: closed"))
		return p
	}
	r, ok := c.waiting[key]
	if !ok || topic != c.table {
		r = &cachedRecord{topic: topic, key: key}
		c.order = append(c.order, r)
		if topic == c.table {
			c.waiting[key] = r
		}
	}
	r.value, r.headers = value, headers
	r.finish = append(r.finish, finish)
	c.unfinished++
	c.nextBatchLocked()
	c.mu.Unlock()
	return p
}

// waitForRoomLocked waits while bound promises are unfinished, until one
// finishes, a write fails, the cache closes, or boundWait has passed.
func (c *RecordCache) waitForRoomLocked() {
	if c.unfinished < c.bound {
		return
	}
	expired := false
	t := time.AfterFunc(c.boundWait, func() {
		c.mu.Lock()
		expired = true
		c.idle.Broadcast()
		c.mu.Unlock()
	})
	defer t.Stop()
	c.held++
	defer func() { c.held-- }()
	for c.unfinished >= c.bound && c.failed == nil && !c.closed && !expired {
		c.idle.Wait()
	}
}

// nextBatchLocked takes what waits as the next batch, if another may be
// in flight, and hands it to the sender.
func (c *RecordCache) nextBatchLocked() {
	if len(c.order) == 0 || len(c.inFlight) >= c.limit {
		return
	}
	b := &cacheBatch{records: c.order, pending: len(c.order)}
	c.order = nil
	clear(c.waiting)
	c.inFlight = append(c.inFlight, b)
	c.outbox <- b // never blocks: it holds as many as may be in flight
}

// sender writes the batches' records, in order, until Close; their
// acknowledgements finish them.
func (c *RecordCache) sender() {
	defer close(c.sent)
	for b := range c.outbox {
		c.mu.Lock()
		failed := c.failed
		c.mu.Unlock()
		if failed != nil {
			// Nothing more goes out after a failed write; these fail.
			for _, r := range b.records {
				c.acknowledged(b, r, nil, fmt.Errorf("not sent: %w", failed))
			}
			continue
		}
		for _, r := range b.records {
			c.inner.EmitWithHeaders(r.topic, r.key, r.value, r.headers).ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
				c.acknowledged(b, r, msg, err)
			})
		}
	}
}

// acknowledged records a record's outcome; once the oldest batches are
// whole, it finishes their promises, in order, and sends what waits.
func (c *RecordCache) acknowledged(b *cacheBatch, r *cachedRecord, msg *sarama.ProducerMessage, err error) {
	c.mu.Lock()
	r.msg, r.err = msg, err
	if err != nil && c.failed == nil {
		c.failed = fmt.Errorf("write %s to %s: %w", r.key, r.topic, err)
	}
	b.pending--
	var done []*cacheBatch
	for len(c.inFlight) > 0 && c.inFlight[0].pending == 0 {
		done = append(done, c.inFlight[0])
		c.inFlight = c.inFlight[1:]
	}
	failed := c.failed
	if failed != nil {
		// Nothing more goes out; what waits fails.
		done = append(done, c.takeWaitingLocked())
	} else {
		c.nextBatchLocked()
	}
	for _, d := range done {
		for _, r := range d.records {
			c.unfinished -= len(r.finish)
		}
	}
	c.finishing.Lock()
	c.idle.Broadcast()
	c.mu.Unlock()

	// Finishing runs goka's callbacks: never under mu.
	for _, d := range done {
		for _, r := range d.records {
			err := r.err
			if err == nil && failed != nil {
				err = fmt.Errorf("an earlier write failed: %w", failed)
			}
			for _, f := range r.finish {
				f(r.msg, err)
			}
		}
	}
	c.finishing.Unlock()
}

// takeWaitingLocked removes what waits, as a batch that was never sent.
func (c *RecordCache) takeWaitingLocked() *cacheBatch {
	b := &cacheBatch{records: c.order}
	c.order = nil
	clear(c.waiting)
	return b
}

// Close waits until every table write is acknowledged (what waits goes
// out as the batches before it are acknowledged, or fails after a failed
// one), and closes the producer below, which flushes what passed through.
// Writes after Close fail.
func (c *RecordCache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("record cache: closed already")
	}
	c.closed = true
	c.idle.Broadcast() // a write waiting for room fails now
	for len(c.inFlight) > 0 || len(c.order) > 0 {
		c.idle.Wait()
	}
	close(c.outbox)
	c.mu.Unlock()
	<-c.sent
	// The last promises may still be finishing.
	c.finishing.Lock()
	c.finishing.Unlock() //nolint:staticcheck // waits for the finishing to end
	return c.inner.Close()
}
