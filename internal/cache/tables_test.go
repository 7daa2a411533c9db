package cache

import (
	"errors"
	"maps"
	"testing"
)

// Tables reads each open partition as stored, including what a cache
// holds in memory only, and forgets a partition once goka closes it.
func TestTablesScanWhatIsOpen(t *testing.T) {
	t.Parallel()
	tables := NewTables(t.TempDir(), LargeMemtable)
	build := tables.Builder(nil)
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

// A cache that has recovered calls the builder's recovered with its
// partition, after its writes are in LevelDB, so that a scan from there
// reads them all; an error there fails the recovery.
func TestTablesTellRecoveredPartitions(t *testing.T) {
	t.Parallel()
	tables := NewTables(t.TempDir(), LargeMemtable)
	var scanned map[string]string
	fail := errors.New("count failed")
	var result error
	build := tables.Builder(func(partition int32) error {
		scanned = map[string]string{}
		if err := tables.ScanPartition(partition, func(key, value []byte) { scanned[string(key)] = string(value) }); err != nil {
			return err
		}
		return result
	})
	st, err := build("mini-group-table", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := map[string]string{"a": `{"Clicks":1}`, "b": `{"Clicks":2}`}
	for k, v := range want {
		if err := st.Set(k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(scanned, want) {
		t.Errorf("recovered partition 3 read %v, want %v", scanned, want)
	}
	result = fail
	if err := st.MarkRecovered(); !errors.Is(err, fail) {
		t.Errorf("MarkRecovered returned %v, want the error of recovered", err)
	}
}
