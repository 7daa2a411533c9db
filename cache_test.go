package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A local table cache that outlived the broker's log is detected and
// rebuilt, instead of stopping goka or serving counts the broker lost.
func TestStaleCacheIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	keys := testKeys(2)
	first := startClicks(t, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.brokers, map[string]int{keys[0]: 3})
	first.waitForBody("/"+keys[0], `{"Clicks":3}`, 30*time.Second)
	first.stop()

	if err := os.RemoveAll(filepath.Join(dir, "broker")); err != nil {
		t.Fatal(err)
	}
	second := startClicks(t, nil, "-data", dir, "-emit=false")
	sendClicks(t, second.brokers, map[string]int{keys[1]: 1})
	second.waitForBody("/"+keys[1], `{"Clicks":1}`, 30*time.Second)
	if status, body, _ := second.get("/" + keys[0]); status != 404 {
		t.Errorf("count the broker no longer has is still served: %d %s", status, body)
	}
	if n := strings.Count(second.stderr.String(), "rebuilding it from the changelog"); n != 1 {
		t.Errorf("got %d log lines about rebuilding the cache, want 1\nstderr:\n%s", n, second.stderr)
	}
}
