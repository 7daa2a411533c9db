package main

import (
	"encoding/binary"
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
	names, err := tablePartitionDirs(brokerDir, string(table))
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

	if err := backupBeforeCompaction(brokerDir, string(table)); err != nil {
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
	if _, err := os.Stat(filepath.Join(brokerDir, compactionBackup)); !os.IsNotExist(err) {
		t.Errorf("the backup is still there after the restore: %v", err)
	}
}

// A backup left by a compaction that did finish is dropped, and writes
// made after it are kept.
func TestFinishedCompactionBackupIsDropped(t *testing.T) {
	dir := t.TempDir()
	brokerDir := filepath.Join(dir, "broker")
	key := testKeys(1)[0]

	first := startClicks(t, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.brokers, map[string]int{key: 3})
	first.waitForBody("/"+key, `{"Clicks":3}`, 30*time.Second)
	first.stop()
	if err := backupBeforeCompaction(brokerDir, string(table)); err != nil {
		t.Fatal(err)
	}
	// Writes after the backup, while it is out of the broker's sight.
	backup, hidden := filepath.Join(brokerDir, compactionBackup), filepath.Join(dir, "hidden")
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

func TestBatchesEnd(t *testing.T) {
	batch := func(base int64, lastDelta int32) []byte {
		b := make([]byte, 61)
		putUint64(b[0:8], uint64(base))
		putUint32(b[8:12], uint32(len(b)-12))
		putUint32(b[23:27], uint32(lastDelta))
		return b
	}
	two := append(batch(0, 4), batch(5, 9)...)
	for _, tc := range []struct {
		name string
		data []byte
		want int64
	}{
		{"empty", nil, -1},
		{"one", batch(0, 4), 5},
		{"two", two, 15},
		{"torn tail", two[:len(two)-3], 5},
		{"garbage", []byte("not a batch at all, just some bytes here"), -1},
	} {
		if got := batchesEnd(tc.data); got != tc.want {
			t.Errorf("%s: batchesEnd = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func putUint64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }
func putUint32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
