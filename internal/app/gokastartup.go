package app

import (
	"context"
	"errors"
	"strings"
)

// gokaStartupCancelled is what goka v1.1.17's Processor.Run returns when
// its context ends while it waits for its start-up tables
// (waitForStartupTables in goka's processor.go): an error of its own, not
// the context's. With no lookup tables the wait is a select between the
// context and an error group that is already done, so a SIGTERM at that
// moment made a clean stop exit 1.
const gokaStartupCancelled = "context closed while waiting for startup tables"

// stoppedDuringStartup returns nil for that error once ctx has ended (the
// stop was asked for), and err otherwise. The same for the context's own
// cancellation, which sarama's ConsumerGroup.Consume returns when the stop
// comes while the group is being joined, and goka passes on as "error
// consuming from group consumer: context canceled".
func stoppedDuringStartup(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && (strings.Contains(err.Error(), gokaStartupCancelled) || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}
