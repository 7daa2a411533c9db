// Package cache is the local copy of the group table the processor and
// the view keep: goka's storage on LevelDB with recent writes held in
// memory (tablecache.go), and what the start-up repair reads and sets in
// a closed copy (closed.go).
package cache

import (
	"bufio"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	lverrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	lstorage "github.com/syndtr/goleveldb/leveldb/storage"
)

// Offset reads the changelog offset the goka LevelDB cache at path
// has recovered up to, or -1 if it has none. It opens the database as
// storage.DefaultBuilder does, but keeps LevelDB's error types, so that a
// corrupted cache can be told from, say, one that another process holds.
func Offset(path string) (off int64, err error) {
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

// Memtable is how much of its writes a local table cache holds in
// LevelDB's memtable (its write buffer) before it writes them to a file
// of level 0.
type Memtable int

const (
	// LargeMemtable recovers a table fastest: the changelog arrives in
	// random key order, so each file written overlaps all of level 1, and
	// each compaction of level 0 rewrites it; with half the size a fresh
	// view of a million users took 1.2 times as long.
	LargeMemtable Memtable = 1 << 20
	// SmallMemtable is for a process whose heap is held to a small soft
	// limit (the embedded broker's): twenty memtables, with the spare and
	// the one being written out of each, were two fifths of the live heap,
	// and the collector ran without pause while the heap sat at the limit
	// (docs/performance.md).
	SmallMemtable Memtable = 512 << 10
)

// Builder opens the local table caches in dir, where goka's
// storage.DefaultBuilder would, as tableCaches: LevelDB with recent
// writes held in memory, and its journal buffered (see bufferedJournal).
func Builder(dir string, memtable Memtable) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		return openTable(dir, topic, partition, memtable)
	}
}

// openTable opens the table cache of topic's partition in dir.
func openTable(dir, topic string, partition int32, memtable Memtable) (*tableCache, error) {
	path := filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition))
	files, err := lstorage.OpenFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("open table cache %s: %w", path, err)
	}
	db, err := leveldb.Open(bufferedJournal{files}, cacheOptions(memtable))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open table cache %s: %w", path, err), files.Close())
	}
	c, err := openTableCache(db, files)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open table cache %s: %w", path, err), db.Close(), files.Close())
	}
	return c, nil
}

// bufferedJournal is LevelDB's file storage with its journal written
// through a 64 KiB buffer: LevelDB writes the journal (its log of recent
// writes, replayed at the next open) with a system call after every write,
// a tenth of the program's CPU at full speed. The buffer is written out
// when full, on Sync and on Close.
//
// A killed process loses what was in the buffer: LevelDB then drops the
// journal's torn end when it opens the cache (it does unless told to be
// strict), so the cache holds the writes up to some point, its offset no
// later than its values, and goka reads the rest again from the
// changelog, as it does after a kill anyway (see tableCache).
type bufferedJournal struct{ lstorage.Storage }

func (s bufferedJournal) Create(fd lstorage.FileDesc) (lstorage.Writer, error) {
	w, err := s.Storage.Create(fd)
	if err != nil || fd.Type != lstorage.TypeJournal {
		return w, err
	}
	return &bufferedWriter{Writer: w, buf: bufio.NewWriterSize(w, 64<<10)}, nil
}

type bufferedWriter struct {
	lstorage.Writer
	buf *bufio.Writer
}

func (w *bufferedWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *bufferedWriter) Sync() error {
	if err := w.buf.Flush(); err != nil {
		return err
	}
	return w.Writer.Sync()
}

func (w *bufferedWriter) Close() error {
	return errors.Join(w.buf.Flush(), w.Writer.Close())
}

// cacheOptions are the LevelDB options of the local table caches (the
// figures behind each are in docs/performance.md).
func cacheOptions(memtable Memtable) *opt.Options {
	// Compact level 0 once it holds 16 MiB, 16 files of the large
	// memtable (instead of LevelDB's 4 files of 4 MiB), and slow or pause
	// writes at twice and three times that: recovery and counting write
	// far more than they read, in random key order, so each compaction
	// rewrites all that the last one wrote. Reads pay for it: a key not
	// held in memory is looked for in each file of level 0, most of them
	// passed over on their Bloom filter.
	l0Files := int((16 << 20) / memtable)
	return &opt.Options{
		// At most 1 MiB instead of 4 MiB: each cache has one per
		// partition, allocated whole; recovery is as fast.
		WriteBuffer:            int(memtable),
		CompactionL0Trigger:    l0Files,
		WriteL0SlowdownTrigger: 2 * l0Files,
		WriteL0PauseTrigger:    3 * l0Files,
		// A Bloom filter in each table file: a user not in the cache yet
		// (every click of a new user) is told apart without reading a
		// block of each overlapping file.
		Filter: filter.NewBloomFilter(10),
		// A 1 MiB block cache instead of 8: the processor and the view
		// each keep one per partition, and 160 MiB of them kept the heap
		// at the embedded broker's memory limit, the collector running
		// without pause.
		BlockCacheCapacity: 1 << 20,
	}
}
