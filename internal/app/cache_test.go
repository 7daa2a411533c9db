package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
)

// A local table cache that outlived the broker's log is detected and
// rebuilt, instead of stopping goka or serving counts the broker lost.
func TestStaleCacheIsRebuilt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := clickstest.Keys(2)
	first := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.Brokers, map[string]int{keys[0]: 3})
	first.WaitForBody("/"+keys[0], `{"Clicks":3}`, 30*time.Second)
	first.Stop()

	if err := os.RemoveAll(filepath.Join(dir, "broker")); err != nil {
		t.Fatal(err)
	}
	second := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	sendClicks(t, second.Brokers, map[string]int{keys[1]: 1})
	second.WaitForBody("/"+keys[1], `{"Clicks":1}`, 30*time.Second)
	if status, body, _ := second.Get("/" + keys[0]); status != 404 {
		t.Errorf("count the broker no longer has is still served: %d %s", status, body)
	}
	if n := strings.Count(second.Log(), "rebuilding it from the changelog"); n != 1 {
		t.Errorf("got %d log lines about rebuilding the cache, want 1\nstderr:\n%s", n, second.Log())
	}
}

// A kill while LevelDB creates a cache can leave it unreadable ("corrupted
// or incomplete CURRENT file"): it is rebuilt from the changelog.
func TestCorruptedCacheIsRebuilt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := clickstest.Keys(1)[0]
	first := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.Brokers, map[string]int{key: 3})
	first.WaitForBody("/"+key, `{"Clicks":3}`, 30*time.Second)
	first.Stop()

	for _, role := range []string{"processor", "view"} {
		current := filepath.Join(dir, role, string(clicks.Table)+".0", "CURRENT")
		if err := os.WriteFile(current, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	second := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	second.WaitForBody("/"+key, `{"Clicks":3}`, 30*time.Second)
	sendClicks(t, second.Brokers, map[string]int{key: 1})
	second.WaitForBody("/"+key, `{"Clicks":4}`, 30*time.Second)
	if !strings.Contains(second.Log(), "unreadable") {
		t.Errorf("the rebuild was not logged:\n%s", second.Log())
	}
}
