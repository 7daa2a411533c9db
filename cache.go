package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka/storage"
)

// resetStaleCaches keeps the local table caches in step with the broker.
//
// goka caches the group table in LevelDB and remembers the changelog
// offset it has read up to. If the broker's log is gone (say ./data/broker
// was deleted) but the cache is not, goka either refuses to start ("local
// offset is higher than partition offset") or serves counts the broker no
// longer has. A cache that is ahead of the changelog cannot be right, so
// it is removed and goka rebuilds it from the changelog.
//
// dirs maps a name (processor, view) to a storage directory as used with
// storage.DefaultBuilder.
func resetStaleCaches(client sarama.Client, tableTopic string, dirs map[string]string, logger *slog.Logger) error {
	ps, err := client.Partitions(tableTopic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", tableTopic, err)
	}
	var stale []string
	for _, dir := range dirs {
		for _, p := range ps {
			path := filepath.Join(dir, fmt.Sprintf("%s.%d", tableTopic, p))
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			local, err := cachedOffset(dir, tableTopic, p)
			if err != nil {
				return err
			}
			newest, err := client.GetOffset(tableTopic, p, sarama.OffsetNewest)
			if err != nil {
				return fmt.Errorf("newest offset of %s/%d: %w", tableTopic, p, err)
			}
			// local is the offset of the last record read; the broker's
			// newest offset is the next one it will write.
			if local >= newest {
				if err := os.RemoveAll(path); err != nil {
					return fmt.Errorf("remove stale table cache: %w", err)
				}
				stale = append(stale, fmt.Sprintf("%s (cache at offset %d, broker at %d)", path, local, newest))
			}
		}
	}
	if len(stale) > 0 {
		logger.Warn("local table cache was ahead of the broker's changelog (was the broker's data removed?): rebuilding it from the changelog", "removed", strings.Join(stale, ", "))
	}
	return nil
}

// cachedOffset reads the changelog offset a goka LevelDB cache has
// recovered up to, or -1 if it has none.
func cachedOffset(dir, tableTopic string, p int32) (off int64, err error) {
	st, err := storage.DefaultBuilder(dir)(tableTopic, p)
	if err != nil {
		return 0, fmt.Errorf("open table cache %s/%s.%d: %w", dir, tableTopic, p, err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close table cache %s/%s.%d: %w", dir, tableTopic, p, cerr)
		}
	}()
	off, err = st.GetOffset(-1)
	if err != nil {
		return 0, fmt.Errorf("read offset of table cache %s/%s.%d: %w", dir, tableTopic, p, err)
	}
	return off, nil
}
