package kafka

import (
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// heldProducer is a goka.Producer whose writes wait until the test
// acknowledges or fails them.
type heldProducer struct {
	mu     sync.Mutex
	sent   []*heldRecord
	closed bool
}

type heldRecord struct {
	topic, key string
	value      []byte
	finish     goka.PromiseFinisher
	done       atomic.Bool
}

func (r *heldRecord) isDone() bool { return r.done.Load() }

func (h *heldProducer) Emit(topic, key string, value []byte) *goka.Promise {
	return h.EmitWithHeaders(topic, key, value, nil)
}

func (h *heldProducer) EmitWithHeaders(topic, key string, value []byte, _ goka.Headers) *goka.Promise {
	p, finish := goka.NewPromiseWithFinisher()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent = append(h.sent, &heldRecord{topic: topic, key: key, value: value, finish: finish})
	return p
}

func (h *heldProducer) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	return nil
}

// record returns the i-th record sent.
func (h *heldProducer) record(t *testing.T, i int) *heldRecord {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if i >= len(h.sent) {
		t.Fatalf("record %d was not sent; %d were", i, len(h.sent))
	}
	return h.sent[i]
}

// waitSent waits until at least n records were sent (the cache sends from
// a goroutine of its own) and returns how many were.
func (h *heldProducer) waitSent(t *testing.T, n int) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); h.count() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d records sent within 5s, want %d", h.count(), n)
		}
		runtime.Gosched()
	}
	return h.count()
}

func (h *heldProducer) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sent)
}

// ack acknowledges record i at offset, or fails it with err.
func (h *heldProducer) ack(t *testing.T, i int, offset int64, err error) {
	t.Helper()
	r := h.record(t, i)
	r.done.Store(true)
	r.finish(&sarama.ProducerMessage{Topic: r.topic, Key: sarama.StringEncoder(r.key), Offset: offset}, err)
}

// outcome is what a promise finished with.
type outcome struct {
	mu     sync.Mutex
	done   bool
	offset int64
	err    error
}

func watch(p *goka.Promise) *outcome {
	o := &outcome{}
	p.ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.done, o.err = true, err
		if msg != nil {
			o.offset = msg.Offset
		}
	})
	return o
}

// settled waits until o's promise has finished: the cache may attach its
// callback to a record's promise after the record was acknowledged, in
// its sender's goroutine.
func (o *outcome) settled(t *testing.T) *outcome {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; runtime.Gosched() {
		o.mu.Lock()
		done := o.done
		o.mu.Unlock()
		if done {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatal("a promise did not finish within 5 s")
		}
	}
}

func TestRecordCacheSendsAtOnceWhenIdle(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 1)
	o := watch(c.Emit("table", "user-1", []byte("1")))
	if inner.waitSent(t, 1) != 1 {
		t.Fatalf("%d records sent, want 1 at once", inner.count())
	}
	if o.done {
		t.Fatal("the promise finished before the write was acknowledged")
	}
	inner.ack(t, 0, 7, nil)
	if !o.done || o.err != nil || o.offset != 7 {
		t.Errorf("promise: %+v, want done at offset 7", o)
	}
}

// While a write is in flight, later ones wait; only the latest value of
// each key goes out, and every merged promise finishes with its record.
// A loop write waits its turn with them, unmerged.
func TestRecordCacheMergesWhileInFlight(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 1)
	first := watch(c.Emit("table", "user-1", []byte("1")))
	var merged []*outcome
	for i := 2; i <= 4; i++ {
		merged = append(merged, watch(c.Emit("table", "user-1", fmt.Appendf(nil, "%d", i))))
	}
	other := watch(c.Emit("table", "user-2", []byte("1")))
	loop := watch(c.Emit("loop", "user-3", []byte("x")))
	if n := inner.waitSent(t, 1); n != 1 {
		t.Fatalf("%d records sent while one was in flight, want 1", n)
	}
	inner.ack(t, 0, 10, nil)
	if first.settled(t); first.offset != 10 {
		t.Fatalf("first: %+v", first)
	}
	if n := inner.waitSent(t, 4); n != 4 {
		t.Fatalf("%d records sent after the acknowledgement, want 4: one per waiting key and the loop's", n)
	}
	for i, want := range []struct{ topic, key, value string }{{"table", "user-1", "4"}, {"table", "user-2", "1"}, {"loop", "user-3", "x"}} {
		if r := inner.record(t, 1+i); r.topic != want.topic || r.key != want.key || string(r.value) != want.value {
			t.Errorf("record %d: %s %s=%s, want %s %s=%s", 1+i, r.topic, r.key, r.value, want.topic, want.key, want.value)
		}
	}
	inner.ack(t, 3, 3, nil) // the loop's first: the batch finishes whole
	inner.ack(t, 2, 11, nil)
	if loop.done || other.done {
		t.Error("a promise finished before its whole batch was acknowledged")
	}
	for _, o := range merged {
		if o.done {
			t.Fatal("a waiting promise finished before its record was acknowledged")
		}
	}
	inner.ack(t, 1, 12, nil)
	for i, o := range merged {
		if !o.done || o.err != nil || o.offset != 12 {
			t.Errorf("merged promise %d: %+v, want done with user-1's record at 12", i, o)
		}
	}
	if !other.done || other.offset != 11 || !loop.done || loop.offset != 3 {
		t.Errorf("user-2: %+v, loop: %+v; want done at 11 and 3", other, loop)
	}
	settledAll(t, c) // merged promises count one each
}

// goka commits a message's offset as soon as its own promises finish: a
// loop write must not finish before a table write made before it, and a
// table write not before a loop write made before it.
func TestRecordCacheOrdersLoopAndTableWrites(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 2)
	table := watch(c.Emit("table", "a", []byte("1")))
	loop := watch(c.Emit("loop", "b", []byte("x")))
	later := watch(c.Emit("table", "c", []byte("1")))
	inner.waitSent(t, 2) // two batches in flight: the table's and the loop's
	inner.ack(t, 1, 7, nil)
	if loop.done {
		t.Fatalf("loop %+v: finished before the table write made before it", loop)
	}
	inner.ack(t, 0, 9, nil)
	table.settled(t)
	loop.settled(t)
	if later.done {
		t.Fatalf("later %+v: finished before it was sent", later)
	}
	inner.waitSent(t, 3)
	inner.ack(t, 2, 5, nil)
	later.settled(t)
}

// After a failed write, batches already taken are not sent: they fail.
func TestRecordCacheSendsNothingAfterAFailure(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 1)
	watch(c.Emit("table", "a", []byte("1")))
	waiting := watch(c.Emit("table", "b", []byte("1")))
	inner.waitSent(t, 1)
	inner.ack(t, 0, 0, errors.New("broken"))
	if waiting.settled(t); waiting.err == nil {
		t.Fatalf("waiting: %+v, want failed", waiting)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := inner.count(); n != 1 {
		t.Errorf("%d records sent, want only the one that failed", n)
	}
	if err := c.Close(); err == nil {
		t.Error("a second Close did not say so")
	}
}

// With more than one batch in flight, a later batch acknowledged first
// still finishes after the earlier one.
func TestRecordCacheFinishesBatchesInOrder(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 2)
	a := watch(c.Emit("table", "a", []byte("1")))
	b := watch(c.Emit("table", "b", []byte("1")))
	if inner.waitSent(t, 2) != 2 {
		t.Fatalf("%d sent, want 2 batches in flight", inner.count())
	}
	inner.ack(t, 1, 5, nil)
	if b.done {
		t.Fatal("the second batch finished before the first")
	}
	inner.ack(t, 0, 9, nil)
	a.settled(t)
	b.settled(t)
}

// A failed write fails its promises, everything after it, and every
// later write.
func TestRecordCacheFailsEverythingAfterAFailure(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 1)
	first := watch(c.Emit("table", "a", []byte("1")))
	waiting := watch(c.Emit("table", "b", []byte("1")))
	inner.waitSent(t, 1)
	inner.ack(t, 0, 0, errors.New("disk full"))
	if first.err == nil || waiting.err == nil {
		t.Fatalf("first %+v, waiting %+v: want both failed", first, waiting)
	}
	if inner.count() != 1 {
		t.Errorf("%d sent: a write went out after the failure", inner.count())
	}
	later := watch(c.Emit("table", "c", []byte("1")))
	if !later.done || later.err == nil {
		t.Errorf("a write after the failure: %+v, want it failed at once", later)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// Close waits for what is in flight and what waits, then closes the
// producer below.
func TestRecordCacheCloseFlushes(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 1)
	first := watch(c.Emit("table", "a", []byte("1")))
	waiting := watch(c.Emit("table", "b", []byte("1")))
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	inner.waitSent(t, 1)
	inner.ack(t, 0, 1, nil)
	inner.waitSent(t, 2) // the waiting record goes out after the first is acknowledged
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the waiting write was acknowledged", err)
	default:
	}
	inner.ack(t, 1, 2, nil)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	first.settled(t)
	waiting.settled(t)
	if !inner.closed {
		t.Errorf("first %+v, waiting %+v, inner closed %v: want all", first, waiting, inner.closed)
	}
	if after := watch(c.Emit("table", "c", []byte("1"))); after.err == nil {
		t.Error("a write after Close did not fail")
	}
}

// Many writers, acknowledgements in any order, more than one batch in
// flight: every promise finishes, without an error, and each key's records
// reach the producer below in the order of its writes.
func TestRecordCacheOrderUnderConcurrency(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint("limit=", limit), func(t *testing.T) {
			inner := &heldProducer{}
			c := NewRecordCache(inner, "table", limit)
			const writers, writes = 4, 200
			var (
				finished, failed atomic.Int64
				seq              atomic.Int64
				wg               sync.WaitGroup
			)
			for w := range writers {
				wg.Go(func() {
					for i := range writes {
						// As in goka, a key is written by one goroutine
						// (its partition's).
						key := fmt.Sprintf("user-%d-%d", w, i%5)
						c.Emit("table", key, fmt.Appendf(nil, "%d", seq.Add(1))).Then(func(err error) {
							if err != nil {
								failed.Add(1)
							}
							finished.Add(1)
						})
					}
				})
			}
			deadline := time.Now().Add(20 * time.Second)
			acked := int64(0)
			for finished.Load() < writers*writes {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d promises finished within 20s", finished.Load(), writers*writes)
				}
				n := inner.count()
				var open []int
				for i := range n {
					if r := inner.record(t, i); !r.isDone() {
						open = append(open, i)
					}
				}
				if len(open) == 0 {
					runtime.Gosched()
					continue
				}
				acked++
				inner.ack(t, open[rand.IntN(len(open))], acked, nil)
			}
			wg.Wait()
			if failed.Load() > 0 {
				t.Errorf("%d promises failed", failed.Load())
			}
			// Each key's values reached the producer in the order written.
			last := map[string]int{}
			for i := range inner.count() {
				r := inner.record(t, i)
				v, _ := strconv.Atoi(string(r.value))
				if v <= last[r.key] {
					t.Fatalf("%s: value %d sent after %d", r.key, v, last[r.key])
				}
				last[r.key] = v
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// boundedProducer is a goka.Producer like sarama's async one under load:
// an Emit waits while capacity writes are unacknowledged, and one
// goroutine acknowledges them in order, as goka's producer delivers
// sarama's successes.
type boundedProducer struct {
	queue chan goka.PromiseFinisher
	stop  chan struct{}
}

func newBoundedProducer(capacity int) *boundedProducer {
	p := &boundedProducer{queue: make(chan goka.PromiseFinisher, capacity), stop: make(chan struct{})}
	go func() {
		offset := int64(0)
		for {
			select {
			case finish := <-p.queue:
				offset++
				finish(&sarama.ProducerMessage{Offset: offset}, nil)
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

func (p *boundedProducer) Emit(topic, key string, value []byte) *goka.Promise {
	return p.EmitWithHeaders(topic, key, value, nil)
}

func (p *boundedProducer) EmitWithHeaders(string, string, []byte, goka.Headers) *goka.Promise {
	promise, finish := goka.NewPromiseWithFinisher()
	p.queue <- finish // waits while the queue is full
	return promise
}

func (p *boundedProducer) Close() error {
	close(p.stop)
	return nil
}

// The acknowledgements arrive on the producer's own goroutine, which must
// never wait to send the next batch: with the producer's input full, that
// send would wait for the very acknowledgements the goroutine delivers (a
// stall seen with 1,000,000 users before the cache sent from a goroutine
// of its own).
func TestRecordCacheAckNeverWaitsForSend(t *testing.T) {
	inner := newBoundedProducer(2)
	c := NewRecordCache(inner, "table", 1)
	var finished atomic.Int64
	const writes = 10_000
	for i := range writes {
		c.Emit("table", fmt.Sprintf("user-%d", i), []byte("1")).Then(func(error) { finished.Add(1) })
	}
	for deadline := time.Now().Add(10 * time.Second); finished.Load() < writes; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writes finished within 10s: the cache stalled", finished.Load(), writes)
		}
		runtime.Gosched()
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// heldWrites is how many writes wait for room now.
func (c *RecordCache) heldWrites() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

// emitAsync emits from a goroutine of its own, as a goka callback that
// may be held, and returns the promise once Emit has returned.
func emitAsync(c *RecordCache, topic, key, value string) <-chan *outcome {
	out := make(chan *outcome, 1)
	go func() { out <- watch(c.Emit(topic, key, []byte(value))) }()
	return out
}

// waitHeld waits until n writes wait for room.
func waitHeld(t *testing.T, c *RecordCache, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); c.heldWrites() != n; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes held within 5s, want %d", c.heldWrites(), n)
		}
	}
}

func returned(t *testing.T, emitted <-chan *outcome) *outcome {
	t.Helper()
	select {
	case o := <-emitted:
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("a held write did not return within 5s")
		return nil
	}
}

// goka keeps each message until its promises finish; the cache holds the
// callback that would give out one promise too many until one finishes.
func TestRecordCacheBoundsUnfinishedWrites(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 1)
	c.bound, c.boundWait = 3, time.Minute
	first := watch(c.Emit("loop", "u1", []byte("a")))
	c.Emit("table", "u2", []byte("1"))
	c.Emit("table", "u2", []byte("2")) // merged, but its promise is unfinished all the same
	fourth := emitAsync(c, "table", "u3", "1")
	waitHeld(t, c, 1)
	if len(fourth) != 0 {
		t.Fatal("the write past the bound returned before a promise finished")
	}
	inner.waitSent(t, 1)
	inner.ack(t, 0, 5, nil)
	first.settled(t)
	o := returned(t, fourth)
	inner.waitSent(t, 2) // u2's latest, sent as the first was acknowledged
	inner.ack(t, 1, 6, nil)
	inner.waitSent(t, 3)
	inner.ack(t, 2, 7, nil)
	if o.settled(t); o.err != nil || o.offset != 7 {
		t.Errorf("the held write: %+v, want done at 7", o)
	}
	settledAll(t, c)
}

// A broker that stops answering delays each write past the bound by
// boundWait, not until sarama gives up.
func TestRecordCacheBoundWaitEnds(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 1)
	c.bound, c.boundWait = 1, 50*time.Millisecond
	c.Emit("table", "u1", []byte("1"))
	start := time.Now()
	o := returned(t, emitAsync(c, "table", "u2", "1"))
	if waited := time.Since(start); waited < c.boundWait {
		t.Errorf("the write past the bound returned after %v, before boundWait (%v)", waited, c.boundWait)
	}
	inner.waitSent(t, 1)
	inner.ack(t, 0, 1, nil)
	inner.waitSent(t, 2)
	inner.ack(t, 1, 2, nil)
	if o.settled(t); o.err != nil {
		t.Errorf("the write let through after boundWait: %v", o.err)
	}
	settledAll(t, c)
}

// A failed write ends the wait at once, though no promise has finished
// yet (the batch before it is not acknowledged): the held write fails.
func TestRecordCacheHeldWriteFailsAfterAFailedWrite(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 2)
	c.bound, c.boundWait = 2, time.Minute
	a := watch(c.Emit("loop", "a", []byte("a")))
	c.Emit("loop", "b", []byte("b"))
	inner.waitSent(t, 2) // two batches in flight: 2 unfinished
	held := emitAsync(c, "loop", "c", "c")
	waitHeld(t, c, 1)
	inner.ack(t, 1, 0, errors.New("broker gone"))
	if o := returned(t, held).settled(t); o.err == nil {
		t.Error("the held write succeeded after a write failed")
	}
	inner.ack(t, 0, 1, nil)
	if a.settled(t); a.err == nil {
		t.Error("a write before the failed one finished without its error")
	}
	settledAll(t, c)
}

// Close ends the wait: the held write fails, and Close returns once what
// was in flight is acknowledged.
func TestRecordCacheHeldWriteFailsOnClose(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 1)
	c.bound, c.boundWait = 1, time.Minute
	c.Emit("table", "u1", []byte("1"))
	held := emitAsync(c, "table", "u2", "1")
	waitHeld(t, c, 1)
	inner.waitSent(t, 1)
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	if o := returned(t, held).settled(t); o.err == nil {
		t.Error("the held write succeeded after the cache closed")
	}
	inner.ack(t, 0, 1, nil)
	if err := <-closed; err != nil {
		t.Errorf("close: %v", err)
	}
	settledAll(t, c)
}

// settledAll checks that the cache counts no promise unfinished once all
// have finished: a count that only rose would hold every write.
func settledAll(t *testing.T, c *RecordCache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unfinished != 0 {
		t.Errorf("%d promises counted unfinished after all finished", c.unfinished)
	}
}

// The processor's producer gets the bound it is built with, and the
// default where none is given.
func TestRecordCacheBuilderBound(t *testing.T) {
	inner := func([]string, string, func() hash.Hash32) (goka.Producer, error) { return &heldProducer{}, nil }
	for _, tc := range []struct{ given, want int }{{SmallUnfinishedBound, SmallUnfinishedBound}, {0, UnfinishedBound}} {
		p, err := RecordCacheBuilder(inner, "table", 2, tc.given)(nil, "clicks", nil)
		if err != nil {
			t.Fatal(err)
		}
		c := p.(*RecordCache)
		if c.bound != tc.want {
			t.Errorf("built with bound %d: %d, want %d", tc.given, c.bound, tc.want)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
