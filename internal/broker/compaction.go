package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// kfake compacts a partition by removing its segment files and then
// writing the kept batches to new ones. A process killed between the two
// loses the partition: for the group table, every count in it. So the
// embedded broker compacts only from CompactPeriodically, and each time
// first keeps hard links to the table's files (cheap: no data is copied).
// If the process dies during the rebuild, the next start finds a
// partition that ends before its backup does and puts the backup back.
//
// The layout is kfake's: <broker dir>/partitions/<topic>-<partition>/
// holding <base offset>.dat segments of Kafka record batches, their .idx
// files and snapshot.json.

const (
	CompactionBackup = "compaction-backup" // complete: the commit point is its rename from .tmp
	backupTmpSuffix  = ".tmp"
	backupDoneSuffix = ".done"
)

// TablePartitionDirs lists the partition directories of topic under dir.
func TablePartitionDirs(dir, topic string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "partitions"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	var names []string
	for _, e := range entries {
		p, ok := strings.CutPrefix(e.Name(), topic+"-")
		if _, err := strconv.Atoi(p); ok && err == nil && e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// BackupBeforeCompaction hard-links the files of topic's partitions into
// the backup directory.
func BackupBeforeCompaction(dir, topic string) error {
	backup := filepath.Join(dir, CompactionBackup)
	tmp := backup + backupTmpSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove old compaction backup: %w", err)
	}
	names, err := TablePartitionDirs(dir, topic)
	if err != nil {
		return err
	}
	// Made even when the table has no partition on disk yet (nothing
	// written), so the rename below finds it.
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("compaction backup: %w", err)
	}
	for _, name := range names {
		src := filepath.Join(dir, "partitions", name)
		dst := filepath.Join(tmp, name)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("compaction backup: %w", err)
		}
		files, err := os.ReadDir(src)
		if err != nil {
			return fmt.Errorf("compaction backup: %w", err)
		}
		for _, f := range files {
			if err := os.Link(filepath.Join(src, f.Name()), filepath.Join(dst, f.Name())); err != nil {
				return fmt.Errorf("compaction backup: %w", err)
			}
		}
	}
	if err := os.Rename(tmp, backup); err != nil {
		return fmt.Errorf("compaction backup: %w", err)
	}
	return nil
}

// dropCompactionBackup removes the backup once compaction has finished.
// The rename comes first, so that a half-removed backup is never taken
// for a complete one.
func dropCompactionBackup(dir string) error {
	backup := filepath.Join(dir, CompactionBackup)
	if err := os.Rename(backup, backup+backupDoneSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("drop compaction backup: %w", err)
	}
	if err := os.RemoveAll(backup + backupDoneSuffix); err != nil {
		return fmt.Errorf("drop compaction backup: %w", err)
	}
	return nil
}

// restoreInterruptedCompaction runs before the broker loads dir. Where a
// complete backup is left and a partition now ends before its backup does,
// the rebuild was cut short: the partition's files are replaced by the
// backup's. A partition that ends where its backup ends (compaction keeps
// the last batch) or later (it took writes since) is complete and kept.
func restoreInterruptedCompaction(dir string, logger *slog.Logger) error {
	backup := filepath.Join(dir, CompactionBackup)
	for _, leftover := range []string{backup + backupTmpSuffix, backup + backupDoneSuffix} {
		if err := os.RemoveAll(leftover); err != nil {
			return fmt.Errorf("remove %s: %w", leftover, err)
		}
	}
	names, err := os.ReadDir(backup)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read compaction backup: %w", err)
	}
	var restored []string
	for _, e := range names {
		saved := filepath.Join(backup, e.Name())
		current := filepath.Join(dir, "partitions", e.Name())
		savedEnd, err := logEnd(saved)
		if err != nil {
			return err
		}
		currentEnd, err := logEnd(current)
		if err != nil {
			return err
		}
		if currentEnd >= savedEnd {
			continue
		}
		if err := replaceFiles(current, saved); err != nil {
			return fmt.Errorf("restore %s from its compaction backup: %w", e.Name(), err)
		}
		restored = append(restored, fmt.Sprintf("%s (log ended at %d, backup at %d)", e.Name(), currentEnd, savedEnd))
	}
	if len(restored) > 0 {
		logger.Warn("a compaction of the embedded broker was interrupted: restored the partitions from the backup taken before it", "partitions", strings.Join(restored, ", "))
	}
	return dropCompactionBackup(dir)
}

// replaceFiles makes dst hold exactly the files of src, as hard links.
func replaceFiles(dst, src string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	files, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := os.Link(filepath.Join(src, f.Name()), filepath.Join(dst, f.Name())); err != nil {
			return err
		}
	}
	return nil
}

// logEnd returns the offset after the last complete record batch in the
// segment files of a partition directory, or -1 if it has none.
func logEnd(dir string) (int64, error) {
	files, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", dir, err)
	}
	end := int64(-1)
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".dat") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			return 0, fmt.Errorf("read segment: %w", err)
		}
		end = max(end, batchesEnd(data))
	}
	return end, nil
}

// batchesEnd walks Kafka record batches (v2: base offset, length, ...,
// last offset delta at byte 23) and returns the end of the last complete
// one, or -1.
func batchesEnd(data []byte) int64 {
	end := int64(-1)
	for len(data) >= 27 {
		base := int64(binary.BigEndian.Uint64(data[0:8]))
		length := int64(int32(binary.BigEndian.Uint32(data[8:12])))
		if length < 15 || int64(len(data)) < 12+length {
			break // a torn tail
		}
		lastDelta := int64(int32(binary.BigEndian.Uint32(data[23:27])))
		end = max(end, base+lastDelta+1)
		data = data[12+length:]
	}
	return end
}
