package cache

import (
	"fmt"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// keyFilter tells the keys a table cache cannot hold from those it may:
// a Bloom filter over every key the cache has held, so that a user's
// first click does not look for the user in LevelDB.
//
// Such a look is costly beyond itself. LevelDB looks for the key in each
// file of level 0 whose key range covers it (most passed over on the
// file's own Bloom filter, after a search of its index), and when it has
// looked in more than one file it counts a "seek" against the first; after
// 100 of them that file is compacted into level 1. With users who click
// in no order every file covers every new user, so level 1 was rewritten
// after each memtable written out: with a million new users the misses
// and those compactions were half the counting process's CPU, and this
// filter doubled the count's speed (docs/performance.md, "Many users").
//
// The filter grows in layers, each twice the keys of the one before, so
// that it need not know at the start how many users will come; a key is
// absent when no layer may hold it. It only grows: a deleted key stays
// "may hold", and LevelDB answers for it.
type keyFilter struct {
	layers   []*bloom.BloomFilter
	capacity uint // keys the last layer is made for
	added    uint // keys added to it
}

const (
	// filterFirstKeys is the capacity of a filter's first layer (157
	// KiB): the users of one of ten partitions of a million users, with
	// room to spare. A second layer costs every new key a second hash.
	filterFirstKeys = 1 << 17
	// filterFalsePositives is each layer's rate of absent keys it lets
	// through at its capacity (9.6 bits a key): those are looked for in
	// LevelDB, as every key was before.
	filterFalsePositives = 0.01
)

func newKeyFilter() *keyFilter {
	return &keyFilter{
		layers:   []*bloom.BloomFilter{bloom.NewWithEstimates(filterFirstKeys, filterFalsePositives)},
		capacity: filterFirstKeys,
	}
}

// filterKeys makes the filter of the keys the cache holds, on the first
// read that needs it, and keeps it from then on. Until then writes add
// nothing: a recovering table, which only writes, pays nothing for it (a
// filter kept from the start cost a fresh view 5 to 10 % of its time), nor
// does a restart that is not read; with a million users in twenty caches
// a scan of all at the start took a quarter of a second.
func (c *tableCache) filterKeys() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys != nil {
		return nil
	}
	keys := newKeyFilter()
	for key := range c.pending {
		keys.add([]byte(key))
	}
	it := c.db.NewIterator(nil, &opt.ReadOptions{DontFillCache: true})
	defer it.Release()
	for it.Next() {
		keys.add(it.Key())
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read the keys of the table cache: %w", err)
	}
	c.keys = keys
	return nil
}

// add records that key may be held, unless the filter says so already:
// a layer fills with keys, not with writes. With one layer, a key costs
// one hash.
func (f *keyFilter) add(key []byte) {
	last := len(f.layers) - 1
	for _, l := range f.layers[:last] {
		if l.Test(key) {
			return
		}
	}
	if f.added < f.capacity {
		if !f.layers[last].TestOrAdd(key) {
			f.added++
		}
		return
	}
	if f.layers[last].Test(key) {
		return
	}
	f.capacity *= 2
	f.layers, f.added = append(f.layers, bloom.NewWithEstimates(f.capacity, filterFalsePositives)), 1
	f.layers[last+1].Add(key)
}

// mayHold tells whether key may be held: false only for a key never added.
func (f *keyFilter) mayHold(key string) bool {
	for _, l := range f.layers {
		if l.TestString(key) {
			return true
		}
	}
	return false
}
