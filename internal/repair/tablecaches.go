package repair

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"clicks/internal/cache"
	"clicks/internal/kafka"

	"github.com/IBM/sarama"
	lverrors "github.com/syndtr/goleveldb/leveldb/errors"
)

// reconcileCaches keeps the local table caches in step with the broker's
// changelog of tableTopic, at start, before goka opens them.
//
// goka caches the group table in LevelDB and remembers the changelog
// offset it has read up to. A cache ahead of the changelog means the
// changelog lost records, and goka would either refuse to start ("local
// offset is higher than partition offset") or serve counts the broker no
// longer has. Two cases:
//
//   - The changelog is the one the cache was read from (the same topic ID,
//     recorded beside the cache at every start): its end was lost, a
//     damaged or truncated segment. The cache still holds the values it
//     lost, so they are written back to the changelog (those that newer
//     says are newer than what the changelog holds for the key), and the
//     cache is kept.
//   - The table is another incarnation (its topic ID differs: the broker's
//     log was removed on purpose and the topic made again), or which one is
//     unknown (a broker without topic IDs, a cache of an older clicks): the
//     cache is removed if it is ahead, and goka rebuilds it; one of another
//     incarnation is removed in any case, as its counts are not the table's.
//
// Writing back is for the processor alone: mayWriteBack, asked only where
// a cache is ahead, returns why this instance must not (it runs no
// processor, or processors of other instances run and may have written
// newer counts, which a stale value written back would hide for good).
// Then an error line says what was not written back and why, the cache is
// kept, and goka reads on from the changelog's end.
//
// A cache LevelDB cannot read (a kill while it created its files) is
// removed and rebuilt. It returns the partitions whose changelog lost
// records a cache held and that were written back. dirs maps a name
// (processor, view) to a storage directory as used with Builder.
func reconcileCaches(k *kafka.Config, client sarama.Client, tableTopic string, dirs map[string]string, newer func(cached, logged []byte) bool, mayWriteBack func() error, logger *slog.Logger) (writtenBack []int32, err error) {
	id, err := k.TopicID(tableTopic)
	if err != nil {
		return nil, err
	}
	ps, err := client.Partitions(tableTopic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", tableTopic, err)
	}
	// The log end of each partition: the next offset the broker writes.
	ends, err := kafka.Offsets(client, tableTopic, sarama.OffsetNewest)
	if err != nil {
		return nil, err
	}
	var removed []string
	remove := func(path, why string) error {
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("remove table cache %s: %w", path, err)
		}
		removed = append(removed, fmt.Sprintf("%s (%s)", path, why))
		return nil
	}
	ahead := map[int32][]aheadCache{}
	for role, dir := range dirs {
		recorded, err := readTableID(dir, tableTopic)
		if err != nil {
			return nil, err
		}
		same := id != "" && recorded == id
		other := id != "" && recorded != "" && recorded != id
		for _, p := range ps {
			path := filepath.Join(dir, fmt.Sprintf("%s.%d", tableTopic, p))
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if other {
				if err := remove(path, fmt.Sprintf("of another incarnation of the table: topic ID %s, now %s", recorded, id)); err != nil {
					return nil, err
				}
				continue
			}
			local, err := cache.Offset(path)
			if lverrors.IsCorrupted(err) {
				if err := remove(path, fmt.Sprintf("unreadable: %v", err)); err != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, err
			}
			// local is the offset of the last record read; the log end
			// is the next one the broker will write.
			if local < ends[p] {
				continue
			}
			if !same {
				if err := remove(path, fmt.Sprintf("cache at offset %d, broker at %d", local, ends[p])); err != nil {
					return nil, err
				}
				continue
			}
			ahead[p] = append(ahead[p], aheadCache{role: role, path: path, offset: local})
		}
		if id != "" {
			if err := writeTableID(dir, tableTopic, id); err != nil {
				return nil, err
			}
		}
	}
	if len(removed) > 0 {
		logger.Warn("local table cache was unreadable, ahead of the broker's changelog, or of another incarnation of the table (was the broker's data removed?): rebuilding it from the changelog", "removed", strings.Join(removed, ", "))
	}
	var refused error
	if len(ahead) > 0 {
		refused = mayWriteBack()
	}
	for _, p := range ps {
		caches := ahead[p]
		if len(caches) > 0 && refused != nil {
			if err := keepAhead(tableTopic, p, ends[p], caches, refused, logger); err != nil {
				return nil, err
			}
			continue
		}
		if len(caches) > 0 {
			if err := writeBack(k, client, tableTopic, p, ends[p], caches, newer, logger); err != nil {
				return nil, err
			}
			writtenBack = append(writtenBack, p)
		}
	}
	return writtenBack, nil
}

// aheadCache is a local cache of a partition that holds more than the
// changelog.
type aheadCache struct {
	role, path string
	offset     int64 // of the last changelog record it read
}

// writeBack writes to partition p of the changelog, which ends at end,
// what the cache furthest ahead holds and the changelog lost, and sets
// the caches' offsets so that goka reads on from what the changelog
// holds now: that cache after what was written back, the others before
// it, so that they read it.
func writeBack(k *kafka.Config, client sarama.Client, topic string, p int32, end int64, caches []aheadCache, newer func(cached, logged []byte) bool, logger *slog.Logger) error {
	src := caches[0]
	for _, c := range caches[1:] {
		if c.offset > src.offset {
			src = c
		}
	}
	logged := map[string][]byte{}
	if err := ReadPartition(client, topic, p, func(_ int32, key, value []byte) { logged[string(key)] = value }); err != nil {
		return fmt.Errorf("read what the changelog holds: %w", err)
	}
	var records [][2][]byte
	err := cache.Each(src.path, func(key, value []byte) {
		if l, ok := logged[string(key)]; ok && (bytes.Equal(l, value) || !newer(value, l)) {
			return
		}
		records = append(records, [2][]byte{bytes.Clone(key), bytes.Clone(value)})
	})
	if err != nil {
		return fmt.Errorf("read table cache %s: %w", src.path, err)
	}
	newEnd := end
	if len(records) > 0 {
		if newEnd, err = Append(k, topic, p, records); err != nil {
			return fmt.Errorf("write back what the changelog lost: %w", err)
		}
	}
	for _, c := range caches {
		at := end - 1
		if c == src {
			at = newEnd - 1
		}
		if err := cache.SetOffset(c.path, at); err != nil {
			return fmt.Errorf("table cache %s: %w", c.path, err)
		}
	}
	logger.Warn("the table's changelog ends before what a local table had read: it lost records (a damaged or truncated log?); wrote back the values the local table holds",
		"topic", topic, "partition", p, "log_end", end, "cache", src.role, "cache_read_up_to", src.offset+1,
		"records_lost", src.offset+1-end, "values_written_back", len(records))
	return nil
}

// keepAhead leaves the caches of partition p, which hold more than the
// changelog (ending at end), as they are, says that what they hold more
// was not written back and why (refused), and sets their offsets so that
// goka reads on from the changelog's end instead of refusing the cache.
func keepAhead(topic string, p int32, end int64, caches []aheadCache, refused error, logger *slog.Logger) error {
	var roles []string
	furthest := caches[0].offset
	for _, c := range caches {
		roles = append(roles, c.role)
		furthest = max(furthest, c.offset)
		if err := cache.SetOffset(c.path, end-1); err != nil {
			return fmt.Errorf("table cache %s: %w", c.path, err)
		}
	}
	logger.Error("the table's changelog ends before what a local table had read: it lost records (a damaged or truncated log?); NOT written back, the counts of those records stay lost in the changelog unless the processor counts them again",
		"topic", topic, "partition", p, "log_end", end, "cache", strings.Join(roles, ","), "cache_read_up_to", furthest+1,
		"records_lost", furthest+1-end, "why", refused.Error())
	return nil
}

// tableIDFile is where the topic ID of the table a role's caches were
// read from is recorded.
func tableIDFile(dir, topic string) string { return filepath.Join(dir, topic+".topic-id") }

// readTableID returns the topic ID recorded in dir, "" if none is.
func readTableID(dir, topic string) (string, error) {
	data, err := os.ReadFile(tableIDFile(dir, topic))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the table's topic ID: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// writeTableID records id as the topic ID of the table dir's caches are read from.
func writeTableID(dir, topic, id string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("record the table's topic ID: %w", err)
	}
	tmp := tableIDFile(dir, topic) + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return fmt.Errorf("record the table's topic ID: %w", err)
	}
	if err := os.Rename(tmp, tableIDFile(dir, topic)); err != nil {
		return fmt.Errorf("record the table's topic ID: %w", err)
	}
	return nil
}
