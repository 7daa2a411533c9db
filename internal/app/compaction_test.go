package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clicks/internal/broker"
	"clicks/internal/clicks"
	"clicks/internal/clickstest"
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
	keys := clickstest.Keys(3)
	want := map[string]int{keys[0]: 5, keys[1]: 2, keys[2]: 7}

	first := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.Brokers, want)
	for k, n := range want {
		first.WaitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
	}
	first.Stop()

	if err := broker.BackupBeforeCompaction(brokerDir, string(clicks.Table)); err != nil {
		t.Fatal(err)
	}
	removeSegments(t, brokerDir)

	second := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	for k, n := range want {
		second.WaitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
	}
	if !strings.Contains(second.Log(), "compaction of the embedded broker was interrupted") {
		t.Errorf("the restore was not logged:\n%s", second.Log())
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
	key := clickstest.Keys(1)[0]

	first := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.Brokers, map[string]int{key: 3})
	first.WaitForBody("/"+key, `{"Clicks":3}`, 30*time.Second)
	first.Stop()
	if err := broker.BackupBeforeCompaction(brokerDir, string(clicks.Table)); err != nil {
		t.Fatal(err)
	}
	// Writes after the backup, while it is out of the broker's sight.
	backup, hidden := filepath.Join(brokerDir, broker.CompactionBackup), filepath.Join(dir, "hidden")
	if err := os.Rename(backup, hidden); err != nil {
		t.Fatal(err)
	}
	second := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	sendClicks(t, second.Brokers, map[string]int{key: 2})
	second.WaitForBody("/"+key, `{"Clicks":5}`, 30*time.Second)
	second.Stop()
	if err := os.Rename(hidden, backup); err != nil {
		t.Fatal(err)
	}

	third := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	third.WaitForBody("/"+key, `{"Clicks":5}`, 30*time.Second)
	if strings.Contains(third.Log(), "was interrupted") {
		t.Errorf("a complete partition was replaced by an older backup:\n%s", third.Log())
	}
}
