package cache

import (
	"errors"
	"strconv"

	"github.com/syndtr/goleveldb/leveldb"
)

// Each calls fn with every key and value of the closed cache at path (not
// its offset), for the start-up repair to write back what a changelog
// lost. fn must copy what it keeps.
func Each(path string, fn func(key, value []byte)) error {
	return withDB(path, func(db *leveldb.DB) error {
		it := db.NewIterator(nil, nil)
		defer it.Release()
		for it.Next() {
			if string(it.Key()) != OffsetKey {
				fn(it.Key(), it.Value())
			}
		}
		return it.Error()
	})
}

// SetOffset records in the closed cache at path, as goka's storage does,
// that it has read the changelog up to offset. Not goka's
// storage.SetOffset: before the storage is marked recovered it keeps the
// offset in memory only, and it was lost when the cache closed: a cache
// kept ahead of a changelog that now ends at 0 was refused by goka for
// good ("kafka tells us there's no message in the topic, but our cache has
// one", retried forever) unless it had read only the first record.
func SetOffset(path string, offset int64) error {
	return withDB(path, func(db *leveldb.DB) error {
		return db.Put([]byte(OffsetKey), strconv.AppendInt(nil, offset, 10), nil)
	})
}

// withDB opens the LevelDB database at path for fn.
func withDB(path string, fn func(*leveldb.DB) error) error {
	db, err := leveldb.OpenFile(path, nil)
	if err != nil {
		return err
	}
	return errors.Join(fn(db), db.Close())
}
