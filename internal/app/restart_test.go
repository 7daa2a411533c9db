package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clicks/internal/clickstest"
	"clicks/internal/logs"
)

// A part that fails is built again and run again, each time after a
// longer pause, until ctx ends; then keepRunning returns without error.
func TestKeepRunningRestartsAFailedPart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs, rebuilds atomic.Int32
	started := make(chan time.Time, 3)
	run := func(ctx context.Context) error {
		started <- time.Now()
		if runs.Add(1) < 3 {
			return errors.New("broker went away")
		}
		<-ctx.Done()
		return nil
	}
	rebuild := func() error { rebuilds.Add(1); return nil }
	done := make(chan error, 1)
	go func() {
		done <- keepRunning(ctx, "part", slog.New(slog.NewTextHandler(io.Discard, nil)), run, rebuild, nil)
	}()
	var at []time.Time
	for range 3 {
		select {
		case s := <-started:
			at = append(at, s)
		case err := <-done:
			t.Fatalf("keepRunning returned %v after %d runs, want it to run the part again", err, runs.Load())
		case <-time.After(10 * time.Second):
			t.Fatalf("%d runs in 10 s, want 3", runs.Load())
		}
	}
	if first, second := at[1].Sub(at[0]), at[2].Sub(at[1]); first < firstRestartPause || second < 2*firstRestartPause {
		t.Errorf("pauses %v and %v, want at least %v and %v", first, second, firstRestartPause, 2*firstRestartPause)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("keepRunning after ctx ended: %v, want nil", err)
	}
	if rebuilds.Load() != 2 {
		t.Errorf("%d rebuilds, want 2", rebuilds.Load())
	}
}

// The line of a failure gives goka's tree of errors condensed, and what
// the note says of the program's state.
func TestKeepRunningSaysWhyOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := logs.Lock(new(strings.Builder))
	logger := slog.New(slog.NewTextHandler(out, nil))
	var runs atomic.Int32
	run := func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			return errors.New("2 errors occurred:\n\t* write user-1: Disk error\n\t* write user-2: Disk error\n")
		}
		<-ctx.Done()
		return nil
	}
	note := func() []any { return []any{"disk", "nearly full"} }
	done := make(chan error, 1)
	go func() { done <- keepRunning(ctx, "part", logger, run, func() error { return nil }, note) }()
	clickstest.WaitFor(t, 10*time.Second, "a line of the failure", func() (bool, string) {
		return strings.Contains(out.String(), "failed; starting it again"), "\n" + out.String()
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := `level=ERROR msg="part failed; starting it again" err="write user-1: Disk error; write user-2: Disk error" causes=2 in=1s disk="nearly full"`
	if !strings.Contains(out.String(), want) {
		t.Errorf("logged:\n%s\nwant a line with:\n%s", out.String(), want)
	}
}
