package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	lverrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/opt"
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
			local, err := cachedOffset(path)
			if lverrors.IsCorrupted(err) {
				// A kill while LevelDB was creating its files can leave
				// them unreadable. It is only a cache: rebuild it.
				if err := os.RemoveAll(path); err != nil {
					return fmt.Errorf("remove unreadable table cache: %w", err)
				}
				stale = append(stale, fmt.Sprintf("%s (unreadable: %v)", path, err))
				continue
			}
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
		logger.Warn("local table cache was unreadable or ahead of the broker's changelog (was the broker's data removed?): rebuilding it from the changelog", "removed", strings.Join(stale, ", "))
	}
	return nil
}

// cachedOffset reads the changelog offset the goka LevelDB cache at path
// has recovered up to, or -1 if it has none. It opens the database as
// storage.DefaultBuilder does, but keeps LevelDB's error types, so that a
// corrupted cache can be told from, say, one that another process holds.
func cachedOffset(path string) (off int64, err error) {
	db, err := leveldb.OpenFile(path, nil)
	if err != nil {
		if lverrors.IsCorrupted(err) {
			return 0, err
		}
		return 0, fmt.Errorf("open table cache %s: %w", path, err)
	}
	st, err := storage.New(db)
	if err != nil {
		return 0, errors.Join(fmt.Errorf("open table cache %s: %w", path, err), db.Close())
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close table cache %s: %w", path, cerr)
		}
	}()
	off, err = st.GetOffset(-1)
	if err != nil {
		return 0, fmt.Errorf("read offset of table cache %s: %w", path, err)
	}
	return off, nil
}

// offsetWriteInterval is how often a local table cache writes down the
// changelog offset it has reached.
const offsetWriteInterval = time.Second

// cacheBuilder opens the local table caches in dir as goka does, but
// writes each cache's offset at most once per offsetWriteInterval (and
// when it closes) instead of after every record: goka's own storage puts
// the offset into LevelDB after each record, which doubled the LevelDB
// writes (each a write system call to its journal) of the processor and
// of the view.
//
// That is safe because the offset only says where to resume reading the
// changelog at the next start, and the changelog holds whole values: a
// cache that resumes from an older offset applies again values it already
// has, which changes nothing. A killed process costs some re-reading.
func cacheBuilder(dir string) storage.Builder {
	inner := storage.BuilderWithOptions(dir, cacheOptions())
	return func(topic string, partition int32) (storage.Storage, error) {
		st, err := inner(topic, partition)
		if err != nil {
			return nil, err
		}
		return &lazyOffsets{Storage: st}, nil
	}
}

// cacheOptions are the LevelDB options of the local table caches.
func cacheOptions() *opt.Options {
	return &opt.Options{
		// A 1 MiB memtable per partition instead of 4 MiB: each cache has
		// one per partition, allocated whole, so the default cost 40 MiB
		// per ten partitions; recovery of 1,000,000 users is as fast.
		WriteBuffer: 1 << 20,
	}
}

// lazyOffsets is a storage.Storage that writes its offset lazily once
// recovered. While recovering, goka's storage keeps the offset in memory
// itself.
type lazyOffsets struct {
	storage.Storage
	recovered atomic.Bool

	mu      sync.Mutex
	pending int64 // the offset not written yet, if dirty
	dirty   bool
	written time.Time
}

func (s *lazyOffsets) MarkRecovered() error {
	if err := s.Storage.MarkRecovered(); err != nil {
		return err
	}
	s.recovered.Store(true)
	return nil
}

func (s *lazyOffsets) SetOffset(offset int64) error {
	if !s.recovered.Load() {
		return s.Storage.SetOffset(offset)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending, s.dirty = offset, true
	if time.Since(s.written) < offsetWriteInterval {
		return nil
	}
	return s.flushLocked()
}

func (s *lazyOffsets) flushLocked() error {
	if !s.dirty {
		return nil
	}
	if err := s.Storage.SetOffset(s.pending); err != nil {
		return err
	}
	s.dirty, s.written = false, time.Now()
	return nil
}

func (s *lazyOffsets) GetOffset(def int64) (int64, error) {
	s.mu.Lock()
	if s.dirty {
		defer s.mu.Unlock()
		return s.pending, nil
	}
	s.mu.Unlock()
	return s.Storage.GetOffset(def)
}

func (s *lazyOffsets) Close() error {
	s.mu.Lock()
	err := s.flushLocked()
	s.mu.Unlock()
	return errors.Join(err, s.Storage.Close())
}
