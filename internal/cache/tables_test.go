package cache

import (
	"maps"
	"testing"
)

// Tables reads each open partition as stored, including what a cache
// holds in memory only, and forgets a partition once goka closes it.
func TestTablesScanWhatIsOpen(t *testing.T) {
	t.Parallel()
	tables := NewTables(t.TempDir(), LargeMemtable)
	build := tables.Builder()
	want := map[int32]map[string]string{
		0: {"a": `{"Clicks":1}`, "c": `{"Clicks":3}`},
		2: {"b": `{"Clicks":2}`},
	}
	for p, values := range want {
		st, err := build("mini-group-table", p)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for k, v := range values {
			if err := st.Set(k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.SetOffset(41); err != nil {
			t.Fatal(err)
		}
	}
	last, err := build("mini-group-table", 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := last.Close(); err != nil {
		t.Fatal(err)
	}
	if got := tables.Partitions(); len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Fatalf("partitions %v, want [0 2]: a closed one is left out", got)
	}
	for p, values := range want {
		got := map[string]string{}
		if err := tables.ScanPartition(p, func(key, value []byte) { got[string(key)] = string(value) }); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, values) {
			t.Errorf("partition %d: %v, want %v (no offset)", p, got, values)
		}
	}
	if err := tables.ScanPartition(5, func(key, value []byte) {}); err == nil {
		t.Error("a closed partition scanned without an error")
	}
}
