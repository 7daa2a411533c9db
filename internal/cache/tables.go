package cache

import (
	"fmt"
	"slices"
	"sync"

	"github.com/lovoo/goka/storage"
)

// Tables are the table caches of one directory that are open now, by
// partition, for reading them as stored: the live page counts the clicks
// in the values without goka's iterator, which merges the partitions in
// key order and decodes every user (for a million users it took three
// times as long).
type Tables struct {
	dir      string
	memtable Memtable

	mu   sync.Mutex
	open map[int32]*tableCache
}

// NewTables returns the table caches of dir; Builder opens them with
// memtable.
func NewTables(dir string, memtable Memtable) *Tables {
	return &Tables{dir: dir, memtable: memtable, open: make(map[int32]*tableCache)}
}

// Builder opens the table caches in the directory as the package's
// Builder does, and keeps each until goka closes it. Once a cache has
// recovered and written what it holds, it calls recovered (if not nil)
// with its partition; an error fails the recovery.
func (t *Tables) Builder(recovered func(partition int32) error) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		c, err := openTable(t.dir, topic, partition, t.memtable)
		if err != nil {
			return nil, err
		}
		if recovered != nil {
			c.recovered = func() error { return recovered(partition) }
		}
		c.closed = func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.open[partition] == c {
				delete(t.open, partition)
			}
		}
		t.mu.Lock()
		t.open[partition] = c
		t.mu.Unlock()
		return c, nil
	}
}

// Partitions returns the partitions whose caches are open, in order.
func (t *Tables) Partitions() []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := make([]int32, 0, len(t.open))
	for p := range t.open {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// ScanPartition calls fn with every key and value the cache of partition
// holds (what it holds in memory written first), in key order, without
// filling LevelDB's block cache. fn must
// not keep key or value: they are valid during the call only.
func (t *Tables) ScanPartition(partition int32, fn func(key, value []byte)) error {
	t.mu.Lock()
	c := t.open[partition]
	t.mu.Unlock()
	if c == nil {
		return fmt.Errorf("scan table cache of partition %d: not open", partition)
	}
	return Scan(c, fn)
}

// Scan calls fn with every key and value of st, in key order, through
// its Iterator. fn must not keep key or value: they are valid during the
// call only.
func Scan(st storage.Storage, fn func(key, value []byte)) error {
	it, err := st.Iterator()
	if err != nil {
		return err
	}
	defer it.Release()
	for it.Next() {
		value, err := it.Value()
		if err != nil {
			return err
		}
		fn(it.Key(), value)
	}
	return it.Err()
}
