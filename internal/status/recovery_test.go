package status

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"clicks/internal/logs"

	"github.com/lovoo/goka"
)

func tableStats(status goka.PartitionStatus, offset, hwm int64, count uint) *goka.TableStats {
	return &goka.TableStats{
		Status:   status,
		Recovery: &goka.RecoveryStats{Offset: offset, Hwm: hwm},
		Input:    &goka.InputStats{Count: count},
	}
}

func TestTableRecovery(t *testing.T) {
	tests := []struct {
		name  string
		parts map[int32]*goka.TableStats
		share float64
	}{
		{"no partitions yet", nil, 0},
		{"one still connecting", map[int32]*goka.TableStats{
			0: tableStats(goka.PartitionRecovering, 50, 100, 50),
			1: tableStats(goka.PartitionConnecting, 0, 0, 0),
		}, 0},
		{"half way", map[int32]*goka.TableStats{
			0: tableStats(goka.PartitionRecovering, 50, 100, 50),
			1: tableStats(goka.PartitionRecovering, 100, 200, 100),
		}, 0.5},
		{"one done", map[int32]*goka.TableStats{
			0: tableStats(goka.PartitionRunning, 99, 100, 100), // goka leaves Offset at the last record
			1: tableStats(goka.PartitionRecovering, 0, 100, 0),
		}, 0.5},
		{"empty table", map[int32]*goka.TableStats{
			0: tableStats(goka.PartitionRunning, 0, 0, 0),
		}, 1},
	}
	for _, tc := range tests {
		if got := tableRecovery(tc.parts).share(); got != tc.share {
			t.Errorf("%s: share %v, want %v", tc.name, got, tc.share)
		}
	}
}

// A table that takes several intervals to recover logs its progress
// (done, total, records per second) each interval, then that it is done.
func TestLogRecovery(t *testing.T) {
	var (
		mu      sync.Mutex
		offset  int64
		records uint
	)
	const total = 1000
	stats := func() map[int32]*goka.TableStats {
		mu.Lock()
		defer mu.Unlock()
		// The table recovers 100 offsets per look.
		offset = min(offset+100, total)
		records += 100
		status := goka.PartitionRecovering
		if offset == total {
			status = goka.PartitionRunning
		}
		return map[int32]*goka.TableStats{0: tableStats(status, offset, total, records)}
	}
	recovered := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return offset == total
	}
	out := logs.Lock(new(strings.Builder))
	done := make(chan struct{})
	go func() {
		LogRecovery(context.Background(), "view", "mini-group-table", stats, recovered, time.Millisecond, slog.New(slog.NewTextHandler(out, nil)))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("LogRecovery did not return once recovered:\n%s", out.String())
	}
	progress := regexp.MustCompile(`msg="recovering table" part=view table=mini-group-table done=(\d+) total=1000 percent=(\S+) records=\d+ records_per_second=(\d+)`).FindAllStringSubmatch(out.String(), -1)
	if len(progress) < 5 {
		t.Fatalf("%d progress lines, want one per look until done:\n%s", len(progress), out.String())
	}
	last := int64(-1)
	for _, m := range progress {
		done, _ := strconv.ParseInt(m[1], 10, 64)
		if done <= last {
			t.Errorf("progress did not grow: %s after %d", m[0], last)
		}
		last = done
		if rate, _ := strconv.Atoi(m[3]); rate <= 0 {
			t.Errorf("no rate in %q", m[0])
		}
	}
	if !regexp.MustCompile(`msg="table recovered" part=view .*took=`).MatchString(out.String()) {
		t.Errorf("no line saying the table recovered:\n%s", out.String())
	}
}

// A table recovered before the first interval logs only that it is done.
func TestLogRecoveryQuiet(t *testing.T) {
	out := logs.Lock(new(strings.Builder))
	LogRecovery(context.Background(), "processor", "mini-group-table", func() map[int32]*goka.TableStats {
		return map[int32]*goka.TableStats{0: tableStats(goka.PartitionRunning, 10, 10, 10)}
	}, func() bool { return true }, time.Millisecond, slog.New(slog.NewTextHandler(out, nil)))
	if got := out.String(); regexp.MustCompile(`recovering table`).MatchString(got) || !regexp.MustCompile(`table recovered`).MatchString(got) {
		t.Errorf("logs %q, want only that the table recovered", got)
	}
}
