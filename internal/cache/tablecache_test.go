package cache

import (
	"fmt"
	"testing"

	"github.com/lovoo/goka/storage"
)

// openCache opens the table cache for partition 0 in dir; the
// caller closes it.
func openCache(t *testing.T, dir string) storage.Storage {
	t.Helper()
	st, err := Builder(dir, LargeMemtable)("mini-group-table", 0)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// What a table cache holds in memory reads back at once, and reaches the
// disk when it closes: values, deletions and the offset.
func TestTableCacheWritesOnClose(t *testing.T) {
	dir := t.TempDir()
	st := openCache(t, dir)
	if got, err := st.GetOffset(-1); err != nil || got != -1 {
		t.Fatalf("offset of a new cache: %d, %v; want the default -1", got, err)
	}
	if err := st.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	for off := range int64(50) {
		if err := st.Set("user-3", fmt.Appendf(nil, `{"Clicks":%d}`, off+1)); err != nil {
			t.Fatal(err)
		}
		if err := st.SetOffset(off); err != nil {
			t.Fatal(err)
		}
		if got, err := st.GetOffset(-1); err != nil || got != off {
			t.Fatalf("GetOffset after SetOffset(%d) = %d, %v", off, got, err)
		}
		if got, err := st.Get("user-3"); err != nil || string(got) != fmt.Sprintf(`{"Clicks":%d}`, off+1) {
			t.Fatalf("Get after Set: %q, %v", got, err)
		}
	}
	for _, key := range []string{"user-4", "user-5"} {
		if err := st.Set(key, []byte(`{"Clicks":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete("user-4"); err != nil {
		t.Fatal(err)
	}
	if has, err := st.Has("user-4"); err != nil || has {
		t.Fatalf("Has after Delete: %v, %v", has, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	again := openCache(t, dir)
	defer again.Close()
	if got, err := again.GetOffset(-1); err != nil || got != 49 {
		t.Errorf("offset after reopening: %d, %v; want 49", got, err)
	}
	want := map[string]string{"user-3": `{"Clicks":50}`, "user-5": `{"Clicks":1}`}
	if got := cacheContents(t, again); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after reopening the cache holds %v, want %v", got, want)
	}
}

// cacheContents reads a whole cache through its iterator.
func cacheContents(t *testing.T, st storage.Storage) map[string]string {
	t.Helper()
	it, err := st.Iterator()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Release()
	got := map[string]string{}
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			t.Fatal(err)
		}
		got[string(it.Key())] = string(v)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// Iterators see what is still held in memory, never the offset, and
// ranges and prefixes select as goka's storage does.
func TestTableCacheIterators(t *testing.T) {
	st := openCache(t, t.TempDir())
	defer st.Close()
	for _, key := range []string{"a-1", "a-2", "b-1", "A-1"} {
		if err := st.Set(key, []byte(key)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetOffset(7); err != nil {
		t.Fatal(err)
	}
	if got := cacheContents(t, st); len(got) != 4 || got["A-1"] != "A-1" || got[OffsetKey] != "" {
		t.Errorf("whole table: %v", got)
	}
	keys := func(it storage.Iterator, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer it.Release()
		var ks []string
		for it.Next() {
			ks = append(ks, string(it.Key()))
		}
		return ks
	}
	if got := fmt.Sprint(keys(st.IteratorWithRange([]byte("a-"), nil))); got != "[a-1 a-2]" {
		t.Errorf("prefix a-: %s", got)
	}
	if got := fmt.Sprint(keys(st.IteratorWithRange([]byte("a-2"), []byte("b-2")))); got != "[a-2 b-1]" {
		t.Errorf("range [a-2, b-2): %s", got)
	}
	it, err := st.Iterator()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Release()
	// "__offset" sorts between "A-1" and "a-1": seeking to it lands on the
	// next user.
	if !it.Seek([]byte(OffsetKey)) || string(it.Key()) != "a-1" {
		t.Errorf("Seek(%q) landed on %q", OffsetKey, it.Key())
	}
}

// Once maxPendingWrites users have changed, they are written to LevelDB
// without waiting for the offset: memory stays bounded however many users
// the table has.
func TestTableCacheBoundsMemory(t *testing.T) {
	st := openCache(t, t.TempDir())
	defer st.Close()
	c := st.(*tableCache)
	// A value of the size a forwarded user's is, so that a batch of
	// maxPendingWrites of them is over maxKeptBatch.
	value := []byte(`{"Clicks":1,"Offset":-1,"TopicID":"d3HgCTqcQ1uCc1y6xYvGvA","Forwarded":{"3":1234567}}`)
	if n := maxPendingWrites * len(value); n <= maxKeptBatch {
		t.Fatalf("a batch of %d bytes does not test the limit of %d", n, maxKeptBatch)
	}
	for i := range 3 * maxPendingWrites {
		if err := c.Set(fmt.Sprintf("user-%d", i), value); err != nil {
			t.Fatal(err)
		}
		if n := len(c.pending); n >= maxPendingWrites {
			t.Fatalf("%d values pending after %d writes", n, i+1)
		}
		if n := cap(c.batch.Dump()); n > maxKeptBatch {
			t.Fatalf("a write batch of %d bytes kept after %d writes", n, i+1)
		}
	}
	for _, key := range []string{"user-0", fmt.Sprintf("user-%d", 3*maxPendingWrites-1)} {
		if got, err := c.Get(key); err != nil || string(got) != string(value) {
			t.Errorf("Get(%s) = %q, %v", key, got, err)
		}
	}
}

// A write batch is made to the size of what it writes, not grown record
// by record (which allocated its buffer twice over).
func TestTableCacheBatchMadeToSize(t *testing.T) {
	st := openCache(t, t.TempDir())
	defer st.Close()
	c := st.(*tableCache)
	for i := range 100 {
		if err := c.Set(fmt.Sprintf("user-%d", i), []byte(fmt.Sprintf(`{"Clicks":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetOffset(12345); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	want := batchBytes(c.pending)
	if err := c.writeLocked(); err != nil {
		t.Fatal(err)
	}
	if got := cap(c.batch.Dump()); got != want {
		t.Errorf("write batch of %d bytes, want %d (made to size)", got, want)
	}
	if c.batch.Len() != 101 {
		t.Errorf("batch of %d records, want 100 values and the offset", c.batch.Len())
	}
}
