package clicks

import (
	"context"
	"hash"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"clicks/internal/logs"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/tester"
)

func TestEmitterSendsClicksForEachUserInTurn(t *testing.T) {
	tt := tester.New(t)
	e, err := goka.NewEmitter(nil, Topic, new(codec.String), goka.WithEmitterTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	track := tt.NewQueueTracker(string(Topic))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out := logs.Lock(new(strings.Builder))
	go func() {
		done <- RunEmitter(ctx, e, time.Millisecond, 3, nil, slog.New(slog.NewTextHandler(out, nil)))
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
		t.Fatalf("RunEmitter: %v", err)
	}
	if got, want := strings.Join(keys, ","), "user-0,user-1,user-2,user-0,user-1,user-2,user-0"; !strings.HasPrefix(got, want) {
		t.Errorf("keys %s, want them in turn: %s", got, want)
	}
	if !strings.Contains(out.String(), `msg="emitter stopped" sent=`) || !strings.Contains(out.String(), "failed=0") {
		t.Errorf("no summary of the emitter's work in the log:\n%s", out.String())
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
	e, err := goka.NewEmitter(nil, Topic, new(codec.String),
		goka.WithEmitterProducerBuilder(func([]string, string, func() hash.Hash32) (goka.Producer, error) { return held, nil }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out := logs.Lock(new(strings.Builder))
	go func() {
		done <- RunEmitter(ctx, e, time.Millisecond, 10, nil, slog.New(slog.NewTextHandler(out, nil)))
	}()

	deadline := time.Now().Add(10 * time.Second)
	for held.count() < 20 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	n := held.count()
	held.release()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunEmitter: %v", err)
	}
	if n < 20 {
		t.Fatalf("only %d clicks sent while none was acknowledged; want the emitter not to wait", n)
	}
	if !strings.Contains(out.String(), "failed=0") {
		t.Errorf("summary:\n%s", out.String())
	}
}
