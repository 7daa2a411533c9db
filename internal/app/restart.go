package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"clicks/internal/logs"
)

// Pauses before a part that failed is started again: doubling from the
// first to the last, and back to the first after a part ran long.
const (
	firstRestartPause = time.Second
	lastRestartPause  = 30 * time.Second
	ranLong           = time.Minute
)

// keepRunning runs a goka part until ctx ends. When the part fails by
// itself (its brokers went away: goka's view and processor give up when
// a broker restarts), the failure is logged, the part is built again and
// run again after a pause, so the program outlives its brokers; /-/ready
// says meanwhile that the part is not running. Only ctx ends it, with the
// error of the last run, if any.
//
// The line logged for a failure gives goka's tree of errors (a branch per
// partition and per message) as its first cause and how many there were,
// and what note (nil: nothing) adds about the program's state, such as a
// full disk that the cause does not name.
func keepRunning(ctx context.Context, name string, logger *slog.Logger, run func(context.Context) error, rebuild func() error, note func() []any) error {
	pause := firstRestartPause
	for {
		started := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		}
		if err == nil {
			err = errors.New("stopped by itself")
		}
		if time.Since(started) > ranLong {
			pause = firstRestartPause
		}
		for {
			short, causes := logs.Condense(err.Error())
			args := []any{"err", short}
			if causes > 1 {
				args = append(args, "causes", causes)
			}
			args = append(args, "in", pause)
			if note != nil {
				args = append(args, note()...)
			}
			logger.Error(name+" failed; starting it again", args...)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
			pause = min(2*pause, lastRestartPause)
			if err = rebuild(); err == nil {
				break
			}
		}
	}
}
