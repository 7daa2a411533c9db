package cache

import (
	"strconv"
	"testing"
)

// Every key added is one the filter may hold, across the layers it grows
// as keys come; of the keys never added, it lets few through.
func TestKeyFilterHoldsEveryKeyAdded(t *testing.T) {
	const n = 5 * filterFirstKeys // three layers: 1, 2 and 4 times the first
	f := newKeyFilter()
	for i := range n {
		f.add([]byte("u" + strconv.Itoa(i)))
	}
	if len(f.layers) != 3 {
		t.Errorf("%d layers for %d keys from a first of %d, want 3", len(f.layers), n, filterFirstKeys)
	}
	for i := range n {
		if key := "u" + strconv.Itoa(i); !f.mayHold(key) {
			t.Fatalf("key %s added, but the filter says it is absent", key)
		}
	}
	passed := 0
	for i := range n {
		if f.mayHold("v" + strconv.Itoa(i)) {
			passed++
		}
	}
	if rate := float64(passed) / n; rate > 3*filterFalsePositives {
		t.Errorf("%.2f %% of absent keys may be held, want at most %.0f %%", 100*rate, 300*filterFalsePositives)
	}
}

// A table cache finds every key it holds, written before it was opened or
// since, and, from its first read on, answers for a key it never held
// without asking LevelDB.
func TestTableCacheFiltersNewKeys(t *testing.T) {
	const n = 2 * filterFirstKeys
	dir := t.TempDir()
	st := openCache(t, dir)
	for i := range n / 2 {
		if err := st.Set("u"+strconv.Itoa(i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openCache(t, dir) // the first half is in LevelDB only
	for i := n / 2; i < n; i++ {
		if err := st.Set("u"+strconv.Itoa(i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.(*tableCache).MarkRecovered(); err != nil { // the second half too
		t.Fatal(err)
	}
	if st.(*tableCache).keys != nil {
		t.Fatal("a cache that was only written keeps a filter: recovery pays for it")
	}
	for i := range n {
		v, err := st.Get("u" + strconv.Itoa(i))
		if err != nil || string(v) != strconv.Itoa(i) {
			t.Fatalf("u%d: %q, %v; want %d", i, v, err, i)
		}
	}
	// With LevelDB closed under it, the cache can only answer for
	// keys its filter, made at the first read, tells apart.
	c := st.(*tableCache)
	if err := c.db.Close(); err != nil {
		t.Fatal(err)
	}
	defer c.files.Close()
	answered := 0
	for i := range n {
		if v, err := st.Get("v" + strconv.Itoa(i)); err == nil && v == nil {
			answered++
		}
	}
	if answered < n*9/10 {
		t.Errorf("%d of %d keys never held answered without LevelDB, want nearly all", answered, n)
	}
	if _, err := st.Get("u1"); err == nil {
		t.Error("a key held was answered with LevelDB closed")
	}
}

// A key written again and again is added to the filter once: the filter
// grows with the users, not with their clicks.
func TestTableCacheFiltersEachKeyOnce(t *testing.T) {
	st := openCache(t, t.TempDir())
	defer st.Close()
	if _, err := st.Get("u0"); err != nil { // makes the filter
		t.Fatal(err)
	}
	for i := range 2 * filterFirstKeys {
		if err := st.Set("u"+strconv.Itoa(i%10), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 { // as the offset's writes do
			if err := st.(*tableCache).MarkRecovered(); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := st.(*tableCache)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.keys.layers) != 1 || c.keys.added > 10 {
		t.Errorf("ten users written %d times: %d keys added, %d layers; want at most 10 keys, one layer", 2*filterFirstKeys, c.keys.added, len(c.keys.layers))
	}
}
