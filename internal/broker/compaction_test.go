package broker

import (
	"encoding/binary"
	"testing"
)

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

// Before anything is written to the table it has no partition on disk;
// the backup is then empty, not an error ("compaction skipped" was logged
// at every compaction until the first click).
func TestBackupOfTableNotOnDiskYet(t *testing.T) {
	dir := t.TempDir()
	if err := BackupBeforeCompaction(dir, "table"); err != nil {
		t.Fatalf("backup of a table with nothing on disk: %v", err)
	}
	if err := dropCompactionBackup(dir); err != nil {
		t.Fatal(err)
	}
}
