package app

import (
	"clicks/internal/clicks"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A local table cache that outlived the broker's log is detected and
// rebuilt, instead of stopping goka or serving counts the broker lost.
func TestStaleCacheIsRebuilt(t *testing.T) {
	t.Parallel()
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

// A kill while LevelDB creates a cache can leave it unreadable ("corrupted
// or incomplete CURRENT file"): it is rebuilt from the changelog.
func TestCorruptedCacheIsRebuilt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := testKeys(1)[0]
	first := startClicks(t, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.brokers, map[string]int{key: 3})
	first.waitForBody("/"+key, `{"Clicks":3}`, 30*time.Second)
	first.stop()

	for _, role := range []string{"processor", "view"} {
		current := filepath.Join(dir, role, string(clicks.Table)+".0", "CURRENT")
		if err := os.WriteFile(current, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	second := startClicks(t, nil, "-data", dir, "-emit=false")
	second.waitForBody("/"+key, `{"Clicks":3}`, 30*time.Second)
	sendClicks(t, second.brokers, map[string]int{key: 1})
	second.waitForBody("/"+key, `{"Clicks":4}`, 30*time.Second)
	if !strings.Contains(second.stderr.String(), "unreadable") {
		t.Errorf("the rebuild was not logged:\n%s", second.stderr)
	}
}
