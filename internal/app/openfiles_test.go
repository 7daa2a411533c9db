package app

import (
	"strings"
	"testing"
)

// Too many partitions for the open-file limit fail at start with the
// reason; the default fits any usual limit.
func TestOpenFileLimit(t *testing.T) {
	all := config{partitions: 1000, process: true, serve: true}
	if err := checkOpenFiles(all, 1024); err == nil || !strings.Contains(err.Error(), "ulimit -n") {
		t.Errorf("1,000 partitions under a limit of 1,024: %v, want an error that says ulimit -n", err)
	}
	if need := neededOpenFiles(all); need < 8087 {
		t.Errorf("1,000 partitions need about %d open files by the estimate, fewer than the 8,087 measured", need)
	}
	if err := checkOpenFiles(config{partitions: 10, process: true, serve: true, brokerKeepMiB: 96}, 1024); err != nil {
		t.Errorf("the default 10 partitions under 1,024: %v", err)
	}
	if err := checkOpenFiles(all, 0); err != nil {
		t.Errorf("an unknown limit: %v, want no error", err)
	}
	viewOnly := config{brokers: []string{"k:9092"}, partitions: 1000, serve: true}
	if neededOpenFiles(viewOnly) >= neededOpenFiles(all) {
		t.Error("a view-only instance on a real cluster needs as many files as all parts with the embedded broker")
	}
}
