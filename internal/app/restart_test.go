package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// A part that fails is built again and run again, each time after a
// longer pause, until ctx ends; then keepRunning returns without error.
func TestKeepRunningRestartsAFailedPart(t *testing.T) {
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
