package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"clicks/internal/kafka"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// LagWatch measures, every few seconds, how far the view and the
// processor are behind the topics they read, in records. The page, the
// readiness answer and the metrics read the last measurement, so no
// request ever waits for the brokers.
type LagWatch struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
	view   ViewStats // nil where the view does not run here
	table  string    // the view's table
	stream string    // the processor group's input
	group  string    // the processor group; "": do not measure its lag
	every  time.Duration
	logger *slog.Logger

	mu   sync.Mutex
	last Lag
}

// ViewStats is what the watch needs of the view: goka's statistics.
type ViewStats interface {
	Stats(ctx context.Context) *goka.ViewStats
}

// Lag is one measurement; a lag of -1 is unknown.
type Lag struct {
	View, Processor int64
	Err             error // why the last measurement failed, if it did
	At              time.Time
}

// NewLagWatch measures the lag of view (nil: none) on table and, unless
// group is "", of the consumer group group on stream, every interval.
func NewLagWatch(k *kafka.Config, view ViewStats, table, stream, group string, every time.Duration, logger *slog.Logger) (*LagWatch, error) {
	cfg := k.Sarama()
	cfg.ClientID = "clicks-lag"
	client, err := sarama.NewClient(k.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to measure lag: %w", err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("create admin to measure lag: %w", err), client.Close())
	}
	w := &LagWatch{client: client, admin: admin, view: view, table: table, stream: stream, group: group, every: every, logger: logger}
	w.last = Lag{View: -1, Processor: -1}
	return w, nil
}

// Run measures until ctx ends, then closes the client.
func (w *LagWatch) Run(ctx context.Context) error {
	defer func() {
		if err := w.client.Close(); err != nil {
			w.logger.Warn("close lag client", "err", err)
		}
	}()
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		r := w.measure()
		w.mu.Lock()
		failedBefore := w.last.Err != nil
		w.last = r
		w.mu.Unlock()
		if r.Err != nil && !failedBefore {
			w.logger.Warn("cannot measure lag", "err", r.Err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Reading returns the last measurement.
func (w *LagWatch) Reading() Lag {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

func (w *LagWatch) measure() Lag {
	r := Lag{View: -1, Processor: -1, At: time.Now()}
	var errs []error
	if w.view != nil {
		hwms, err := kafka.Offsets(w.client, w.table, sarama.OffsetNewest)
		if err == nil {
			r.View = viewLag(w.view.Stats(context.Background()), hwms)
		}
		errs = append(errs, err)
	}
	if w.group != "" {
		lag, err := w.groupLag()
		r.Processor = lag
		errs = append(errs, err)
	}
	r.Err = errors.Join(errs...)
	return r
}

// viewLag is how many records of the table the view has not read yet:
// per partition, the high-water mark less the view's position. A
// partition that is still recovering counts from its recovery offset.
func viewLag(stats *goka.ViewStats, hwms map[int32]int64) int64 {
	var lag int64
	for p, hwm := range hwms {
		ts, ok := stats.Partitions[p]
		if !ok {
			lag += hwm
			continue
		}
		var pos int64
		if ts.Status == goka.PartitionRunning {
			pos = ts.Recovery.Hwm // where recovery ended
		} else {
			pos = ts.Recovery.Offset
		}
		if ts.Input.Count > 0 {
			pos = max(pos, ts.Input.LastOffset+1)
		}
		lag += max(0, hwm-pos)
	}
	return lag
}

// groupLag is how many clicks the processor group has not committed yet,
// as Kafka's own tools count consumer lag.
func (w *LagWatch) groupLag() (int64, error) {
	hwms, err := kafka.Offsets(w.client, w.stream, sarama.OffsetNewest)
	if err != nil {
		return -1, err
	}
	parts := make([]int32, 0, len(hwms))
	for p := range hwms {
		parts = append(parts, p)
	}
	resp, err := w.admin.ListConsumerGroupOffsets(w.group, map[string][]int32{w.stream: parts})
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		// Not yet created: nothing committed, all of it is lag.
		resp, err = &sarama.OffsetFetchResponse{}, nil
	}
	if err != nil {
		return -1, fmt.Errorf("committed offsets of %s: %w", w.group, err)
	}
	var lag int64
	for p, hwm := range hwms {
		committed := int64(0)
		if b := resp.GetBlock(w.stream, p); b != nil && b.Offset > 0 {
			committed = b.Offset
		}
		lag += max(0, hwm-committed)
	}
	return lag, nil
}
