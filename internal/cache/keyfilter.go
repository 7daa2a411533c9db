package cache

import (
	"fmt"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/syndtr/goleveldb/leveldb"
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
	// filterFirstKeys is the capacity of a filter's first layer: a
	// quarter of the users of each of ten partitions of a million users.
	filterFirstKeys = 1 << 16
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

// scanKeys returns the filter of the keys db holds.
func scanKeys(db *leveldb.DB) (*keyFilter, error) {
	f := newKeyFilter()
	it := db.NewIterator(nil, &opt.ReadOptions{DontFillCache: true})
	defer it.Release()
	for it.Next() {
		f.add(it.Key())
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("read the keys of the table cache: %w", err)
	}
	return f, nil
}

// add records that key may be held.
func (f *keyFilter) add(key []byte) {
	if f.added >= f.capacity {
		f.capacity *= 2
		f.layers, f.added = append(f.layers, bloom.NewWithEstimates(f.capacity, filterFalsePositives)), 0
	}
	f.layers[len(f.layers)-1].Add(key)
	f.added++
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
