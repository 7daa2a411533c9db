package status

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BrokerWatch asks the brokers for their metadata every interval, with a
// deadline of its own, and is the "brokers" part of /-/ready: not ready
// while they do not answer. The Kafka clients under goka wait far longer
// before they give up (sarama: 30 s per read), so without it a stalled
// broker looked ready, with frozen numbers, for half a minute.
type BrokerWatch struct {
	brokers []string
	every   time.Duration
	timeout time.Duration
	logger  *slog.Logger

	mu    sync.Mutex
	ok    bool
	since time.Time // when ok last changed
	err   error     // why the last ask failed
}

// NewBrokerWatch watches brokers every interval; an answer that takes
// longer than timeout counts as none.
func NewBrokerWatch(brokers []string, every, timeout time.Duration, logger *slog.Logger) *BrokerWatch {
	return &BrokerWatch{brokers: brokers, every: every, timeout: timeout, logger: logger, ok: true, since: time.Now()}
}

// Run asks until ctx ends.
func (w *BrokerWatch) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.brokers...), kgo.ClientID("clicks-watch"), kgo.DialTimeout(w.timeout))
	if err != nil {
		return fmt.Errorf("broker watch client: %w", err)
	}
	defer cl.Close()
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		actx, cancel := context.WithTimeout(ctx, w.timeout)
		_, err := kmsg.NewPtrMetadataRequest().RequestWith(actx, cl)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		w.record(err)
	}
}

// record notes an answer (err nil) or its absence, and logs each change.
func (w *BrokerWatch) record(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ok := err == nil
	w.err = err
	if ok == w.ok {
		return
	}
	now := time.Now()
	if ok {
		w.logger.Info("the brokers answer again", "after", now.Sub(w.since).Round(time.Second))
	} else {
		w.logger.Warn("the brokers do not answer", "brokers", w.brokers, "err", err)
	}
	w.ok, w.since = ok, now
}

// Answering tells whether the brokers answered the last time they were
// asked, and since when that is so.
func (w *BrokerWatch) Answering() (bool, time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ok, w.since, w.err
}

// Part is the watch as a part of /-/ready.
func (w *BrokerWatch) Part() Part {
	return Part{Name: "brokers", Ready: func() (bool, string) {
		ok, since, err := w.Answering()
		if ok {
			return true, "answering"
		}
		return false, fmt.Sprintf("not answering for %s: %v", time.Since(since).Round(time.Second), err)
	}}
}
