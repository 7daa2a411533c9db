package app

import (
	"clicks/internal/broker"
	"clicks/internal/clicks"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// removeSegments does to a partition what the first half of kfake's
// rebuild does: its segment and index files are gone.
func removeSegments(t *testing.T, brokerDir string) {
	t.Helper()
	names, err := broker.TablePartitionDirs(brokerDir, string(clicks.Table))
	if err != nil || len(names) == 0 {
		t.Fatalf("table partitions: %v %v", names, err)
	}
	for _, name := range names {
		for _, pattern := range []string{"*.dat", "*.idx"} {
			files, err := filepath.Glob(filepath.Join(brokerDir, "partitions", name, pattern))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// A kill in the middle of a compaction leaves the backup and partitions
// without their segments: the next start restores them and every count.
func TestInterruptedCompactionIsRestored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	brokerDir := filepath.Join(dir, "broker")
	keys := testKeys(3)
	want := map[string]int{keys[0]: 5, keys[1]: 2, keys[2]: 7}

	first := startClicks(t, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.brokers, want)
	for k, n := range want {
		first.waitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
	}
	first.stop()

	if err := broker.BackupBeforeCompaction(brokerDir, string(clicks.Table)); err != nil {
		t.Fatal(err)
	}
	removeSegments(t, brokerDir)

	second := startClicks(t, nil, "-data", dir, "-emit=false")
	for k, n := range want {
		second.waitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
	}
	if !strings.Contains(second.stderr.String(), "compaction of the embedded broker was interrupted") {
		t.Errorf("the restore was not logged:\n%s", second.stderr)
	}
	if _, err := os.Stat(filepath.Join(brokerDir, broker.CompactionBackup)); !os.IsNotExist(err) {
		t.Errorf("the backup is still there after the restore: %v", err)
	}
}

// A backup left by a compaction that did finish is dropped, and writes
// made after it are kept.
func TestFinishedCompactionBackupIsDropped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	brokerDir := filepath.Join(dir, "broker")
	key := testKeys(1)[0]

	first := startClicks(t, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.brokers, map[string]int{key: 3})
	first.waitForBody("/"+key, `{"Clicks":3}`, 30*time.Second)
	first.stop()
	if err := broker.BackupBeforeCompaction(brokerDir, string(clicks.Table)); err != nil {
		t.Fatal(err)
	}
	// Writes after the backup, while it is out of the broker's sight.
	backup, hidden := filepath.Join(brokerDir, broker.CompactionBackup), filepath.Join(dir, "hidden")
	if err := os.Rename(backup, hidden); err != nil {
		t.Fatal(err)
	}
	second := startClicks(t, nil, "-data", dir, "-emit=false")
	sendClicks(t, second.brokers, map[string]int{key: 2})
	second.waitForBody("/"+key, `{"Clicks":5}`, 30*time.Second)
	second.stop()
	if err := os.Rename(hidden, backup); err != nil {
		t.Fatal(err)
	}

	third := startClicks(t, nil, "-data", dir, "-emit=false")
	third.waitForBody("/"+key, `{"Clicks":5}`, 30*time.Second)
	if strings.Contains(third.stderr.String(), "was interrupted") {
		t.Errorf("a complete partition was replaced by an older backup:\n%s", third.stderr)
	}
}
