package main

import (
	"context"
	"hash"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/tester"
)

func TestEmitterSendsClicksForEachUserInTurn(t *testing.T) {
	tt := tester.New(t)
	e, err := goka.NewEmitter(nil, topic, new(codec.String), goka.WithEmitterTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	track := tt.NewQueueTracker(string(topic))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs syncBuffer
	go func() {
		done <- runEmitter(ctx, e, time.Millisecond, 3, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	}()

	var keys []string
	deadline := time.Now().Add(10 * time.Second)
	for len(keys) < 7 && time.Now().Before(deadline) {
		if key, value, ok := track.Next(); ok {
			keys = append(keys, key)
			if _, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", strings.Split(value.(string), " m=")[0]); err != nil {
				t.Errorf("click value %q is not a time: %v", value, err)
			}
		} else {
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runEmitter: %v", err)
	}
	if got, want := strings.Join(keys, ","), "user-0,user-1,user-2,user-0,user-1,user-2,user-0"; !strings.HasPrefix(got, want) {
		t.Errorf("keys %s, want them in turn: %s", got, want)
	}
	if !strings.Contains(logs.String(), `msg="emitter stopped" sent=`) || !strings.Contains(logs.String(), "failed=0") {
		t.Errorf("no summary of the emitter's work in the log:\n%s", logs.String())
	}
}

// A click the broker does not take is logged and counted as failed.
func TestEmitterLogsFailedSends(t *testing.T) {
	broker := startClicks(t, nil, "-data", t.TempDir(), "-emit=false", "-process=false", "-serve=false")
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	k := newKafka(broker.brokers, 1, logger)
	cfg := k.config()
	cfg.Producer.Retry.Max = 1
	cfg.Producer.Retry.Backoff = 10 * time.Millisecond
	e, err := goka.NewEmitter(broker.brokers, topic, new(codec.String),
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runEmitter(ctx, e, 5*time.Millisecond, 10, nil, logger) }()

	// The emitter works, then the broker goes away under it.
	deadline := time.Now().Add(20 * time.Second)
	for len(recordsPerKey(t, broker.brokers, string(topic))) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	broker.stop()
	for !strings.Contains(logs.String(), "click not sent") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runEmitter: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("runEmitter did not return after its broker went away")
	}
	if !strings.Contains(logs.String(), "click not sent") {
		t.Fatalf("no failed send logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "failed=0") {
		t.Errorf("summary counts no failure:\n%s", logs.String())
	}
}

// heldProducer is a goka.Producer that acknowledges nothing until release.
type heldProducer struct {
	mu       sync.Mutex
	pending  []goka.PromiseFinisher
	released bool
}

func (h *heldProducer) Emit(topic, key string, value []byte) *goka.Promise {
	p, finish := goka.NewPromiseWithFinisher()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		finish(nil, nil)
	} else {
		h.pending = append(h.pending, finish)
	}
	return p
}

func (h *heldProducer) EmitWithHeaders(topic, key string, value []byte, _ goka.Headers) *goka.Promise {
	return h.Emit(topic, key, value)
}

func (h *heldProducer) Close() error { return nil }

func (h *heldProducer) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pending)
}

func (h *heldProducer) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released = true
	for _, finish := range h.pending {
		finish(nil, nil)
	}
}

// The emitter does not wait for one click's acknowledgement before it
// sends the next: waiting (EmitSync) costs the producer's flush interval
// per click and halves the rate of the original.
func TestEmitterDoesNotWaitForAcknowledgements(t *testing.T) {
	held := new(heldProducer)
	e, err := goka.NewEmitter(nil, topic, new(codec.String),
		goka.WithEmitterProducerBuilder(func([]string, string, func() hash.Hash32) (goka.Producer, error) { return held, nil }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs syncBuffer
	go func() {
		done <- runEmitter(ctx, e, time.Millisecond, 10, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	}()

	deadline := time.Now().Add(10 * time.Second)
	for held.count() < 20 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	n := held.count()
	held.release()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runEmitter: %v", err)
	}
	if n < 20 {
		t.Fatalf("only %d clicks sent while none was acknowledged; want the emitter not to wait", n)
	}
	if !strings.Contains(logs.String(), "failed=0") {
		t.Errorf("summary:\n%s", logs.String())
	}
}
