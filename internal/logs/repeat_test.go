package logs

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// A warning repeated for every record is logged once per interval, with
// how many times it happened since the last line.
func TestRepeatOncePerInterval(t *testing.T) {
	var out strings.Builder
	r := NewRepeat(slog.New(slog.NewTextHandler(&out, nil)), 10*time.Second)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }

	for range 1000 {
		r.Warn("bad record skipped", "offset", 1)
	}
	r.Warn("another problem")
	now = now.Add(11 * time.Second)
	r.Warn("bad record skipped", "offset", 2)

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out.String())
	}
	if strings.Contains(lines[0], "repeated") || !strings.Contains(lines[0], "offset=1") {
		t.Errorf("first line %q: want the first record, without a count", lines[0])
	}
	if !strings.Contains(lines[1], "another problem") {
		t.Errorf("second line %q: another text is logged at once", lines[1])
	}
	// 999 suppressed, plus this one.
	if !strings.Contains(lines[2], "offset=2") || !strings.Contains(lines[2], "repeated=1000") {
		t.Errorf("third line %q: want offset=2 repeated=1000", lines[2])
	}
}

// Concurrent writes come out whole, and With runs under the same lock.
func TestLockedWritesWhole(t *testing.T) {
	var b strings.Builder
	l := Lock(&b)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprintf(l, "line from %d\n", i)
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSpace(l.String()), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, "line from ") || len(line) != len("line from 0") {
			t.Fatalf("a line came out torn: %q", line)
		}
	}
	var n int
	if err := l.With(func(b *strings.Builder) error { n = b.Len(); return nil }); err != nil || n != 800*len("line from 0\n") {
		t.Errorf("With saw %d bytes (%v), want %d", n, err, 800*len("line from 0\n"))
	}
}

// Lines of one key (the broker's "persist batch %s: %v" for every
// partition) share the interval, at the level asked for.
func TestRepeatSharesAKey(t *testing.T) {
	var out strings.Builder
	r := NewRepeat(slog.New(slog.NewTextHandler(&out, nil)), 10*time.Second)
	for p := range 10 {
		r.Log(slog.LevelError, "persist batch %s: %v", fmt.Sprintf("persist batch user-clicks-%d: no space left on device", p))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], "user-clicks-0") {
		t.Fatalf("want one ERROR line, of the first partition:\n%s", out.String())
	}
}

// goka's trees of errors are logged as their first cause and how many
// there were.
func TestGokaLoggerCondenses(t *testing.T) {
	var out strings.Builder
	g := Goka{L: slog.New(slog.NewTextHandler(&out, nil))}
	g.Printf("[Processor %s] Error running/stopping partition processor %d: %v", "mini-group", 7,
		"2 errors occurred:\n\t* write user-0: kafka server: Disk error\n\t* write user-1: kafka server: Disk error\n")
	want := `msg="[Processor mini-group] Error running/stopping partition processor 7: write user-0: kafka server: Disk error; write user-1: kafka server: Disk error" causes=2`
	if !strings.Contains(out.String(), want) {
		t.Errorf("logged %q, want it to contain %q", out.String(), want)
	}
}
