package app

import (
	"context"
	"errors"
	"fmt"
	"testing"
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
		{"the same words, not stopped", running, gokas, gokas},
		{"another error while stopping", stopped, other, other},
		{"no error", stopped, nil, nil},
	} {
		if got := stoppedDuringStartup(tc.ctx, tc.err); !errors.Is(got, tc.want) && got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
