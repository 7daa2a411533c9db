package clicks

import (
	"clicks/internal/logs"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
)

// NewEmitter makes the emitter that simulates users clicking: it writes
// to the click stream topic with goka's string codec, as the original;
// opts say how it reaches Kafka.
func NewEmitter(brokers []string, topic goka.Stream, opts ...goka.EmitterOption) (*goka.Emitter, error) {
	e, err := goka.NewEmitter(brokers, topic, new(codec.String), opts...)
	if err != nil {
		return nil, fmt.Errorf("create emitter for %s: %w", topic, err)
	}
	return e, nil
}

// RunEmitter sends one click per tick, for user-0 … user-(users-1) in turn,
// with the click's time as the value, until ctx ends; then it flushes what
// it has sent.
//
// Clicks are sent asynchronously: the original's EmitSync waits for the
// producer's flush interval (100 ms) on every click, so a 100 ms ticker
// yields only about five clicks a second. A click not sent is logged, once
// per 10 s with how many since (a broker that is gone would otherwise
// give a line per click); one whose outcome is unknown (the broker may
// have written it: see UnknownOutcome) is counted as that, not as failed.
// events (nil: none) hears of each click's outcome.
func RunEmitter(ctx context.Context, e *goka.Emitter, interval time.Duration, users int, events Events, logger *slog.Logger) (err error) {
	if events == nil {
		events = NoEvents{}
	}
	var (
		sent, failed, unknown atomic.Int64
		pending               sync.WaitGroup // callbacks not run yet: goka's Finish may return before them
		notSent               = logs.NewRepeat(logger, 10*time.Second)
	)
	defer func() {
		if ferr := e.Finish(); ferr != nil {
			err = errors.Join(err, fmt.Errorf("flush emitter: %w", ferr))
		}
		pending.Wait()
		logger.Info("emitter stopped", "sent", sent.Load(), "failed", failed.Load(), "unknown", unknown.Load())
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		key := fmt.Sprintf("user-%d", i%users)
		pending.Add(1)
		p, err := e.Emit(key, time.Now().String())
		if err != nil {
			pending.Done()
			return fmt.Errorf("emit click for %s: %w", key, err)
		}
		p.Then(func(err error) {
			defer pending.Done()
			events.Emitted(err)
			switch {
			case err == nil:
			case UnknownOutcome(err):
				unknown.Add(1)
				notSent.Warn("click perhaps not sent: the broker may have written it", "key", key, "err", err)
				return
			default:
				failed.Add(1)
				notSent.Warn("click not sent", "key", key, "err", err)
				return
			}
			sent.Add(1)
		})
	}
}

// UnknownOutcome tells whether a send that failed with err may all the
// same have been written: the idempotent producer's out-of-order sequence
// number after a broker restart, and timeouts, where the broker may have
// written the batch and its answer was lost.
func UnknownOutcome(err error) bool {
	var ne net.Error
	return errors.Is(err, sarama.ErrOutOfOrderSequenceNumber) ||
		errors.Is(err, sarama.ErrRequestTimedOut) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}
