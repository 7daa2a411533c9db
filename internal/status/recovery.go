package status

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/lovoo/goka"
)

// recoveryState sums the recovery of a table's partitions: the offsets
// read of those there are, and the records read so far.
type recoveryState struct {
	done, total int64
	records     uint64
	started     bool // every partition knows its high-water mark
}

// tableRecovery adds up the recovery stats goka keeps per partition.
func tableRecovery(parts map[int32]*goka.TableStats) recoveryState {
	r := recoveryState{started: len(parts) > 0}
	for _, ts := range parts {
		if ts == nil || ts.Recovery == nil || ts.Status < goka.PartitionRecovering {
			r.started = false
			continue
		}
		r.total += ts.Recovery.Hwm
		if ts.Status >= goka.PartitionPreparing {
			r.done += ts.Recovery.Hwm // recovered: all of it
		} else {
			r.done += min(ts.Recovery.Offset, ts.Recovery.Hwm)
		}
		if ts.Input != nil {
			r.records += uint64(ts.Input.Count)
		}
	}
	return r
}

// share is the part of the offsets recovered, 0 to 1: 0 until every
// partition has started, 1 for an empty table.
func (r recoveryState) share() float64 {
	switch {
	case !r.started:
		return 0
	case r.total <= 0:
		return 1
	}
	return math.Min(1, float64(r.done)/float64(r.total))
}

// ProcessorTables returns the stats of the processor's group table
// partitions.
func ProcessorTables(p *goka.Processor) map[int32]*goka.TableStats {
	stats := p.StatsWithContext(context.Background())
	parts := make(map[int32]*goka.TableStats, len(stats.Group))
	for id, ps := range stats.Group {
		if ps != nil && ps.TableStats != nil {
			parts[id] = ps.TableStats
		}
	}
	return parts
}

// LogRecovery logs, every `every` while a table is still recovering,
// how far it is and how fast it goes; then once that it is done. A table
// that recovers within the first interval logs only that it is done. It
// looks whether the table has recovered more often than it logs, so that
// the time it reports is right.
func LogRecovery(ctx context.Context, part, table string, stats func() map[int32]*goka.TableStats, recovered func() bool, every time.Duration, logger *slog.Logger) {
	start := time.Now()
	t := time.NewTicker(min(every, 100*time.Millisecond))
	defer t.Stop()
	var lastRecords uint64
	lastLog := start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if recovered() {
				r := tableRecovery(stats())
				logger.Info("table recovered", "part", part, "table", table, "records", r.records, "took", now.Sub(start).Round(time.Millisecond))
				return
			}
			if now.Sub(lastLog) < every {
				continue
			}
			r := tableRecovery(stats())
			rate := float64(r.records-lastRecords) / now.Sub(lastLog).Seconds()
			logger.Info("recovering table", "part", part, "table", table,
				"done", r.done, "total", r.total, "percent", math.Floor(r.share()*1000)/10,
				"records", r.records, "records_per_second", math.Round(rate))
			lastRecords, lastLog = r.records, now
		}
	}
}
