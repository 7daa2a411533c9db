package kafka

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
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
	done       bool
}

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

func (h *heldProducer) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sent)
}

// ack acknowledges record i at offset, or fails it with err.
func (h *heldProducer) ack(t *testing.T, i int, offset int64, err error) {
	t.Helper()
	r := h.record(t, i)
	h.mu.Lock()
	r.done = true
	h.mu.Unlock()
	r.finish(&sarama.ProducerMessage{Topic: r.topic, Key: sarama.StringEncoder(r.key), Offset: offset}, err)
}

// outcome is what a promise finished with.
type outcome struct {
	done   bool
	offset int64
	err    error
}

func watch(p *goka.Promise) *outcome {
	o := &outcome{}
	p.ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
		o.done, o.err = true, err
		if msg != nil {
			o.offset = msg.Offset
		}
	})
	return o
}

func TestRecordCacheSendsAtOnceWhenIdle(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 1)
	o := watch(c.Emit("table", "user-1", []byte("1")))
	if inner.count() != 1 {
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
	if n := inner.count(); n != 2 {
		t.Fatalf("%d records sent while one was in flight, want 2 (the first, and the loop's passing through)", n)
	}
	if r := inner.record(t, 1); r.topic != "loop" {
		t.Fatalf("second record to %s, want the loop topic's, unchanged", r.topic)
	}
	inner.ack(t, 1, 3, nil)
	if !loop.done {
		t.Error("the loop write waited for the table")
	}
	inner.ack(t, 0, 10, nil)
	if !first.done || first.offset != 10 {
		t.Fatalf("first: %+v", first)
	}
	if n := inner.count(); n != 4 {
		t.Fatalf("%d records sent after the acknowledgement, want 4: one per waiting key", n)
	}
	if r := inner.record(t, 2); r.key != "user-1" || string(r.value) != "4" {
		t.Errorf("user-1's record %s=%s, want its latest value, 4", r.key, r.value)
	}
	for _, o := range append(merged, other) {
		if o.done {
			t.Fatal("a waiting promise finished before its record was acknowledged")
		}
	}
	inner.ack(t, 3, 11, nil) // user-2 first: the batch finishes whole
	if other.done {
		t.Error("a promise finished before its whole batch was acknowledged")
	}
	inner.ack(t, 2, 12, nil)
	for i, o := range merged {
		if !o.done || o.err != nil || o.offset != 12 {
			t.Errorf("merged promise %d: %+v, want done with user-1's record at 12", i, o)
		}
	}
	if !other.done || other.offset != 11 {
		t.Errorf("user-2: %+v, want done at 11", other)
	}
}

// With more than one batch in flight, a later batch acknowledged first
// still finishes after the earlier one.
func TestRecordCacheFinishesBatchesInOrder(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 2)
	a := watch(c.Emit("table", "a", []byte("1")))
	b := watch(c.Emit("table", "b", []byte("1")))
	if inner.count() != 2 {
		t.Fatalf("%d sent, want 2 batches in flight", inner.count())
	}
	inner.ack(t, 1, 5, nil)
	if b.done {
		t.Fatal("the second batch finished before the first")
	}
	inner.ack(t, 0, 9, nil)
	if !a.done || !b.done {
		t.Fatalf("a %+v, b %+v: want both done", a, b)
	}
}

// A failed write fails its promises, everything after it, and every
// later write.
func TestRecordCacheFailsEverythingAfterAFailure(t *testing.T) {
	inner := &heldProducer{}
	c := NewRecordCache(inner, "table", 1)
	first := watch(c.Emit("table", "a", []byte("1")))
	waiting := watch(c.Emit("table", "b", []byte("1")))
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
	inner.ack(t, 0, 1, nil)
	// The waiting record goes out after the first is acknowledged.
	for deadline := time.Now().Add(5 * time.Second); inner.count() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the waiting record was not sent after the first was acknowledged")
		}
		runtime.Gosched()
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the waiting write was acknowledged", err)
	default:
	}
	inner.ack(t, 1, 2, nil)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !first.done || !waiting.done || !inner.closed {
		t.Errorf("first %+v, waiting %+v, inner closed %v: want all", first, waiting, inner.closed)
	}
	if after := watch(c.Emit("table", "c", []byte("1"))); after.err == nil {
		t.Error("a write after Close did not fail")
	}
}

// Many writers, acknowledgements in any order: no promise finishes before
// every write made before it was acknowledged, and each finishes with a
// record of its key holding its value or a later one.
func TestRecordCacheOrderUnderConcurrency(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint("limit=", limit), func(t *testing.T) {
			inner := &heldProducer{}
			c := NewRecordCache(inner, "table", limit)
			const writers, writes = 4, 200
			type emitted struct {
				seq int
				key string
				o   *outcome
			}
			var (
				mu  sync.Mutex
				all []emitted
				seq int
				wg  sync.WaitGroup
			)
			for w := range writers {
				wg.Go(func() {
					for i := range writes {
						key := fmt.Sprintf("user-%d", (w+i)%5)
						mu.Lock()
						seq++
						o := watch(c.Emit("table", key, fmt.Appendf(nil, "%d", seq)))
						all = append(all, emitted{seq, key, o})
						mu.Unlock()
					}
				})
			}
			// Acknowledge what is sent, in a random order, until all is done.
			acked := 0
			for {
				n := inner.count()
				var open []int
				for i := range n {
					if !inner.record(t, i).done {
						open = append(open, i)
					}
				}
				if len(open) == 0 {
					mu.Lock()
					finished := len(all) == writers*writes
					mu.Unlock()
					if finished && inner.count() == n {
						wg.Wait()
						if inner.count() == n {
							break
						}
					}
					continue
				}
				i := open[rand.IntN(len(open))]
				acked++
				inner.ack(t, i, int64(acked), nil)
			}
			// Each write's promise finished; the records a promise finished
			// with were acknowledged in order of the writes.
			slices.SortFunc(all, func(a, b emitted) int { return a.seq - b.seq })
			for _, e := range all {
				if !e.o.done || e.o.err != nil {
					t.Fatalf("write %d of %s: %+v", e.seq, e.key, e.o)
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
