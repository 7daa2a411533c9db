package cache

import (
	"path/filepath"
	"testing"
)

// The offset the start-up repair sets in a cache is what goka reads when
// it opens the cache next. Before, it was set through goka's storage,
// which keeps it in memory only until the storage is marked recovered,
// so it never reached the disk: a view-only instance whose cache was
// kept ahead of a changelog cut to nothing was refused by goka for good.
func TestSetOffsetReachesTheDisk(t *testing.T) {
	dir := t.TempDir()
	st := openCache(t, dir)
	if err := st.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	if err := st.SetOffset(2); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, offset := range []int64{-1, 0, 7} {
		path := filepath.Join(dir, "mini-group-table.0")
		if err := SetOffset(path, offset); err != nil {
			t.Fatal(err)
		}
		st := openCache(t, dir)
		got, err := st.GetOffset(-3)
		if cerr := st.Close(); cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil || got != offset {
			t.Errorf("offset after SetOffset(%d): %d, %v", offset, got, err)
		}
	}
}
