package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	ldbiter "github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// OffsetKey is where goka's LevelDB storage keeps the changelog offset a
// cache has reached; tableCache keeps it there too, so that caches written
// by either can be read by both (Offset reads it with goka's).
const OffsetKey = "__offset"

// maxPendingWrites is how many users' values a tableCache holds in memory
// before it writes them to LevelDB in one batch. Busy users change in
// place, far fewer than that; a million new users fill it at once, and
// then 1,024 counted and recovered faster than 4,096, and 16,384 slower
// (docs/performance.md, "Many users").
const maxPendingWrites = 1024

// maxKeptBatch is the largest write batch whose buffer a tableCache keeps
// for its next write. Batches of new users (100 KiB and more) kept by
// each of twenty caches between writes were an eighth of the live heap
// while a million users were counted. A busy user's batches are small
// and reuse theirs.
const maxKeptBatch = 64 << 10

// offsetWriteInterval is how often a busy tableCache writes what it holds,
// with the changelog offset it has reached, to LevelDB.
const offsetWriteInterval = time.Second

// tableCache is a local table cache (goka's storage.Storage) on LevelDB
// that holds recent writes in memory and writes them to LevelDB in
// batches: once maxPendingWrites users have changed, at most once per
// offsetWriteInterval with the offset, and when it is recovered, iterated
// or closed. goka's own storage writes each value to LevelDB as it comes,
// and each offset too, so that a click cost two LevelDB writes, each with
// its journal record, and a read in LevelDB. Here a busy user's click is
// a map update, most reads are map reads, and a new user's read is
// answered by a Bloom filter (keyFilter).
//
// It is safe because the changelog, not the cache, is the table: the
// offset written with a batch is never later than the values in it, and
// the changelog holds whole values, so after a kill goka reads again from
// that offset and sets each value to what it already was or to a newer
// one. A kill costs at most a second of re-reading.
type tableCache struct {
	db    *leveldb.DB
	files io.Closer // LevelDB's files, closed after the database

	mu        sync.RWMutex
	pending   map[string][]byte // values not in LevelDB yet; nil: deleted
	keys      *keyFilter        // every key held, from the first read on (filterKeys)
	offset    int64             // the offset the values reach
	known     bool              // offset is known: the cache is not new
	dirty     bool              // offset or pending not written yet
	written   time.Time         // when they last were
	batch     leveldb.Batch     // reused for every write: its buffer is most of what a write allocates
	closed    func()            // called once closed, if set (Tables)
	recovered func() error      // called once recovered, if set (Tables)
	reading   sync.WaitGroup    // iterators not released yet
}

// openTableCache opens the cache in db, whose files are closed after it.
func openTableCache(db *leveldb.DB, files io.Closer) (*tableCache, error) {
	c := &tableCache{db: db, files: files, pending: make(map[string][]byte), written: time.Now()}
	data, err := db.Get([]byte(OffsetKey), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("read the table cache's offset: %w", err)
	default:
		if c.offset, err = strconv.ParseInt(string(data), 10, 64); err != nil {
			return nil, fmt.Errorf("table cache offset %q: %w", data, err)
		}
		c.known = true
	}
	return c, nil
}

// Open is part of storage.Storage; the cache is open when built.
func (c *tableCache) Open() error { return nil }

// Get returns the value of key, nil if it has none. The caller must not
// change it: it may be the cache's own copy.
func (c *tableCache) Get(key string) ([]byte, error) {
	c.mu.RLock()
	v, ok := c.pending[key]
	filtered := c.keys != nil
	absent := !ok && filtered && key != OffsetKey && !c.keys.mayHold(key)
	c.mu.RUnlock()
	switch {
	case ok:
		return v, nil
	case absent:
		return nil, nil
	case !filtered && key != OffsetKey:
		if err := c.filterKeys(); err != nil {
			return nil, err
		}
		return c.Get(key)
	}
	v, err := c.db.Get([]byte(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %q from the table cache: %w", key, err)
	}
	return v, nil
}

func (c *tableCache) Has(key string) (bool, error) {
	v, err := c.Get(key)
	return v != nil, err
}

func (c *tableCache) Set(key string, value []byte) error {
	if value == nil {
		value = []byte{} // nil in pending means deleted
	}
	return c.put(key, append([]byte(nil), value...))
}

func (c *tableCache) Delete(key string) error { return c.put(key, nil) }

func (c *tableCache) put(key string, value []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The filter hears of a key not in memory, told by the map's growth:
	// a busy user's write costs one map write, no read and no hash.
	held := len(c.pending)
	c.pending[key] = value
	if len(c.pending) > held && c.keys != nil {
		c.keys.add([]byte(key))
	}
	c.dirty = true
	if len(c.pending) >= maxPendingWrites {
		return c.writeLocked()
	}
	return nil
}

// SetOffset records that the values reach offset; it reaches LevelDB with
// them. goka sets it once for every write the changelog acknowledged, and
// the processor's record cache acknowledges the writes it merged with the
// one record that carried them: the same offset again changes nothing.
func (c *tableCache) SetOffset(offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known && offset == c.offset {
		return nil
	}
	c.offset, c.known, c.dirty = offset, true, true
	if time.Since(c.written) >= offsetWriteInterval {
		return c.writeLocked()
	}
	return nil
}

// GetOffset returns the offset the values reach, def if the cache is new.
func (c *tableCache) GetOffset(def int64) (int64, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.known {
		return def, nil
	}
	return c.offset, nil
}

// MarkRecovered writes what the cache holds: recovery is done.
func (c *tableCache) MarkRecovered() error {
	c.mu.Lock()
	err := c.writeLocked()
	c.mu.Unlock()
	if err != nil || c.recovered == nil {
		return err
	}
	return c.recovered()
}

// writeLocked writes the pending values and the offset in one batch.
func (c *tableCache) writeLocked() error {
	if !c.dirty {
		return nil
	}
	b := &c.batch
	b.Reset()
	if n := batchBytes(c.pending); n > cap(b.Dump()) {
		// Made to size: grown record by record, the buffer of a
		// thousand new users was allocated twice over, and copied.
		if err := b.Load(make([]byte, 0, n)); err != nil {
			return fmt.Errorf("make a write batch of %d bytes: %w", n, err)
		}
	}
	for k, v := range c.pending {
		if v == nil {
			b.Delete([]byte(k))
		} else {
			b.Put([]byte(k), v)
		}
	}
	if c.known {
		b.Put([]byte(OffsetKey), strconv.AppendInt(nil, c.offset, 10))
	}
	if err := c.db.Write(b, nil); err != nil {
		return fmt.Errorf("write %d values to the table cache: %w", len(c.pending), err)
	}
	clear(c.pending)
	if len(b.Dump()) > maxKeptBatch {
		c.batch = leveldb.Batch{}
	}
	c.dirty, c.written = false, time.Now()
	return nil
}

// batchBytes is the room LevelDB's Batch asks for to hold pending and
// the offset: each record's key, value and their lengths as the longest
// varints, and its type.
func batchBytes(pending map[string][]byte) int {
	const record = 1 + 2*binary.MaxVarintLen32
	n := record + len(OffsetKey) + 20 // the offset, at most 20 digits
	for k, v := range pending {
		n += record + len(k) + len(v)
	}
	return n
}

// Iterator iterates over the table, offset excluded, after writing what
// is pending so that LevelDB holds every value.
func (c *tableCache) Iterator() (storage.Iterator, error) {
	return c.iterator(nil, &opt.ReadOptions{DontFillCache: true})
}

// IteratorWithRange iterates from start to limit, or over the keys that
// start with start if limit is empty, as goka's storage does.
func (c *tableCache) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	if len(limit) > 0 {
		return c.iterator(&util.Range{Start: start, Limit: limit}, nil)
	}
	return c.iterator(util.BytesPrefix(start), nil)
}

func (c *tableCache) iterator(r *util.Range, ro *opt.ReadOptions) (storage.Iterator, error) {
	c.mu.Lock()
	err := c.writeLocked()
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	c.reading.Add(1)
	return tableIterator{c.db.NewIterator(r, ro), sync.OnceFunc(c.reading.Done)}, nil
}

// Close writes what the cache holds and closes LevelDB once every
// iterator is released: LevelDB must not close under one, and goka may
// close a cache while it is still being counted for the page (Tables).
func (c *tableCache) Close() error {
	c.mu.Lock()
	err := c.writeLocked()
	c.mu.Unlock()
	c.reading.Wait()
	if c.closed != nil {
		c.closed()
	}
	return errors.Join(err, c.db.Close(), c.files.Close())
}

// tableIterator is a LevelDB iterator that skips the offset.
type tableIterator struct {
	ldbiter.Iterator
	released func() // tells the cache, once
}

func (i tableIterator) Release() {
	i.Iterator.Release()
	i.released()
}

func (i tableIterator) Next() bool {
	for i.Iterator.Next() {
		if string(i.Iterator.Key()) != OffsetKey {
			return true
		}
	}
	return false
}

func (i tableIterator) Seek(key []byte) bool {
	if !i.Iterator.Seek(key) {
		return false
	}
	if string(i.Iterator.Key()) == OffsetKey {
		return i.Next()
	}
	return true
}

func (i tableIterator) Err() error { return i.Iterator.Error() }

func (i tableIterator) Value() ([]byte, error) { return i.Iterator.Value(), nil }
