package app

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/go-multierror"
)

// goka's Processor.Run, stopped while it waits for its start-up tables,
// returns an error of its own instead of nil: after a SIGTERM the program
// must still exit 0, and a real error must still count.
func TestGokaStartupCancelledIsACleanStop(t *testing.T) {
	// As goka v1.1.17 words it (processor.go, Run and waitForStartupTables).
	gokas := fmt.Errorf("error waiting for start up tables: %w",
		errors.New("context closed while waiting for startup tables to become ready"))
	stopped, stop := context.WithCancel(context.Background())
	stop()
	running := context.Background()
	other := errors.New("kafka: client has run out of available brokers")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want error
	}{
		{"stopped during start-up", stopped, gokas, nil},
		// As goka v1.1.17 passes on sarama's answer to a stop during the
		// join, in a multierror of its own.
		{"stopped while joining the group", stopped, multierror.Append(nil, fmt.Errorf("error consuming from group consumer: %w", context.Canceled)), nil},
		{"cancelled, not stopped", running, context.Canceled, context.Canceled},
		{"the same words, not stopped", running, gokas, gokas},
		{"another error while stopping", stopped, other, other},
		{"no error", stopped, nil, nil},
	} {
		if got := stoppedDuringStartup(tc.ctx, tc.err); !errors.Is(got, tc.want) && got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
