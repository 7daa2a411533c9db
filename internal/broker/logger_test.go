package broker

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// kfake's line for every failed write is logged once per interval; its
// other lines, such as a corrupt segment truncated in each partition at
// start, each as it comes.
func TestKfakeLoggerThrottlesOnlyWrites(t *testing.T) {
	var out strings.Builder
	k := newKfakeLogger(slog.New(slog.NewTextHandler(&out, nil)))
	for p := range 5 {
		k.Logf(kfake.LogLevelWarn, "persist batch %s-%d: %v", "user-clicks", p, "no space left on device")
		k.Logf(kfake.LogLevelWarn, "partition %s-%d segment %d: truncating %d corrupt bytes", "user-clicks", p, 0, 5)
	}
	k.Logf(kfake.LogLevelDebug, "saveSessionState: nothing to save")
	if n := strings.Count(out.String(), "persist batch"); n != 1 {
		t.Errorf("%d lines of failed writes, want 1:\n%s", n, out.String())
	}
	for p := range 5 {
		if !strings.Contains(out.String(), "user-clicks-"+string(rune('0'+p))+" segment 0: truncating 5 corrupt bytes") {
			t.Errorf("partition %d's truncation not logged:\n%s", p, out.String())
		}
	}
	if strings.Contains(out.String(), "saveSessionState") {
		t.Errorf("a debug line was logged:\n%s", out.String())
	}
}
