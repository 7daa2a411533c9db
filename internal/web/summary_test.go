package web

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"clicks/internal/cache"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	lstorage "github.com/syndtr/goleveldb/leveldb/storage"
)

// memTable is a view's table for the summary's tests: goka's LevelDB
// storage, as a view has, on in-memory LevelDBs, one per partition (a
// key's partition is its length's remainder), updated through the
// summary's callback and read as stored, as Scan reads a view's.
type memTable struct {
	parts []storage.Storage
	scans atomic.Int32 // partitions read by ScanPartition
}

func newMemTable(t *testing.T) *memTable {
	t.Helper()
	m := &memTable{}
	for range 3 {
		db, err := leveldb.Open(lstorage.NewMemStorage(), nil)
		if err != nil {
			t.Fatalf("open an in-memory LevelDB: %v", err)
		}
		st, err := storage.New(db)
		if err != nil {
			t.Fatalf("goka storage: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		m.parts = append(m.parts, st)
	}
	return m
}

// partition is the partition of key.
func (m *memTable) partition(key string) int32 { return int32(len(key) % len(m.parts)) }

// storage is the storage of key's partition.
func (m *memTable) storage(key string) storage.Storage { return m.parts[m.partition(key)] }

// update passes value to the summary's callback as goka does, with the
// partition of key.
func (m *memTable) update(s *Summary, key string, value []byte) error {
	return s.Update(partitionContext{partition: m.partition(key)}, m.storage(key), key, value)
}

// partitionContext is the context of an update of partition.
type partitionContext struct {
	goka.DefaultUpdateContext
	partition int32
}

func (c partitionContext) Partition() int32 { return c.partition }

func (m *memTable) set(t *testing.T, s *Summary, key string, clicks int) {
	t.Helper()
	var value []byte
	if clicks >= 0 {
		value = fmt.Appendf(nil, `{"Clicks":%d,"Offset":%d}`, clicks, clicks)
	}
	if err := m.update(s, key, value); err != nil {
		t.Fatalf("update %s: %v", key, err)
	}
}

func (m *memTable) Partitions() []int32 { return []int32{0, 1, 2} }

func (m *memTable) ScanPartition(p int32, fn func(key, value []byte)) error {
	m.scans.Add(1)
	return cache.Scan(m.parts[p], fn)
}

// wantSummary computes the summary of counts the slow way.
func wantSummary(counts map[string]int) (total, users int64, top []RankedUser) {
	for k, n := range counts {
		total += int64(n)
		users++
		top = append(top, RankedUser{k, int64(n)})
	}
	slices.SortFunc(top, func(a, b RankedUser) int {
		if ranksBelow(a, b) {
			return 1
		}
		return -1
	})
	return total, users, top[:min(len(top), maxTop)]
}

func checkSummary(t *testing.T, s *Summary, counts map[string]int) {
	t.Helper()
	got := s.Snapshot()
	total, users, top := wantSummary(counts)
	if got.Total != total || got.Users != users {
		t.Errorf("total %d, users %d; want %d, %d", got.Total, got.Users, total, users)
	}
	if !slices.Equal(got.Top, top) {
		t.Errorf("top users differ:\n got %v\nwant %v", got.Top, top)
	}
}

// Clicks as the processor writes them (each count grows by one), for more
// users than the top list holds, some before and some after the scan.
func TestSummaryFollowsGrowingCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	table, s := newMemTable(t), NewSummary()
	counts := map[string]int{}
	click := func(n int) {
		for range n {
			// A skewed choice, so a few users lead and many trail.
			key := fmt.Sprintf("user-%d", int(rng.ExpFloat64()*80)%1000)
			counts[key]++
			table.set(t, s, key, counts[key])
		}
	}
	click(5000) // before the view has recovered: not tracked
	if s.Snapshot().Tracking {
		t.Fatal("the summary tracks before its first scan")
	}
	if err := s.Scan(table); err != nil {
		t.Fatal(err)
	}
	checkSummary(t, s, counts)
	click(20000)
	checkSummary(t, s, counts)
	if s.Snapshot().Stale {
		t.Error("growing counts made the top list stale")
	}
}

// A top user that loses clicks or is deleted makes the list stale, and a
// new scan puts it right.
func TestSummaryDecreaseAndDelete(t *testing.T) {
	table, s := newMemTable(t), NewSummary()
	if err := s.Scan(table); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := range maxTop + 20 {
		key := fmt.Sprintf("u%03d", i)
		counts[key] = i + 1
		table.set(t, s, key, i+1)
	}
	checkSummary(t, s, counts)

	top := s.Snapshot().Top[0].User
	delete(counts, top)
	table.set(t, s, top, -1)
	if snap := s.Snapshot(); !snap.Stale || snap.Users != int64(len(counts)) {
		t.Fatalf("after deleting the top user: stale %v, users %d; want stale, %d", snap.Stale, snap.Users, len(counts))
	}
	if err := s.Scan(table); err != nil {
		t.Fatal(err)
	}
	checkSummary(t, s, counts)

	// Fewer users than the list holds: a drop is never stale.
	small, ss := newMemTable(t), NewSummary()
	if err := ss.Scan(small); err != nil {
		t.Fatal(err)
	}
	small.set(t, ss, "a", 5)
	small.set(t, ss, "b", 3)
	small.set(t, ss, "a", 1)
	checkSummary(t, ss, map[string]int{"a": 1, "b": 3})
	if ss.Snapshot().Stale {
		t.Error("a drop with fewer users than the list holds made it stale")
	}
}

// Users with equal counts keep their places (ordered by key), so the page
// does not shuffle them.
func TestSummaryOrdersTiesByKey(t *testing.T) {
	table, s := newMemTable(t), NewSummary()
	if err := s.Scan(table); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"user-2", "user-10", "user-1", "user-3"} {
		table.set(t, s, k, 7)
	}
	var got []string
	for _, u := range s.Snapshot().Top {
		got = append(got, u.User)
	}
	if want := []string{"user-1", "user-10", "user-2", "user-3"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

// A value that is not a user's JSON counts zero and does not stop the
// view's update.
func TestSummaryBadValue(t *testing.T) {
	table, s := newMemTable(t), NewSummary()
	if err := s.Scan(table); err != nil {
		t.Fatal(err)
	}
	table.set(t, s, "good", 4)
	if err := table.update(s, "bad", []byte("not json")); err != nil {
		t.Fatalf("a bad value failed the update: %v", err)
	}
	snap := s.Snapshot()
	if snap.Total != 4 || snap.Users != 2 {
		t.Errorf("total %d, users %d; want 4, 2", snap.Total, snap.Users)
	}
	if got, err := table.storage("bad").Get("bad"); err != nil || string(got) != "not json" {
		t.Errorf("the bad value was not stored as it came: %q, %v", got, err)
	}
	// and a scan over it agrees
	if err := s.Scan(table); err != nil {
		t.Fatal(err)
	}
	if again := s.Snapshot(); again.Total != 4 || again.Users != 2 {
		t.Errorf("after a scan: total %d, users %d; want 4, 2", again.Total, again.Users)
	}
}

// A restarted view: its caches hold users already, and it catches up.
// Each partition is counted once it has recovered, with what it caught up
// on, and followed from then on; Scan counts only the partitions not
// counted yet, and then the numbers are known.
func TestSummaryCountsEachPartitionOnce(t *testing.T) {
	table, s := newMemTable(t), NewSummary()
	counts := map[string]int{}
	for i := range 3 * maxTop {
		key := fmt.Sprintf("u%d", i) // "u0" … "u299": partitions 2, 0 and 1 by length
		counts[key] = i%50 + 1
		value := fmt.Appendf(nil, `{"Clicks":%d,"Offset":%d}`, counts[key], counts[key])
		if err := table.storage(key).Set(key, value); err != nil {
			t.Fatal(err)
		}
	}
	click := func(key string) {
		counts[key]++
		table.set(t, s, key, counts[key])
	}
	click("u10") // partition 0, catching up
	click("u7")  // partition 2, catching up
	for _, p := range []int32{0, 2} {
		if err := s.CountPartition(table, p); err != nil {
			t.Fatal(err)
		}
	}
	click("u10") // partition 0, recovered
	click("new") // partition 0, a new user
	if s.Snapshot().Tracking {
		t.Fatal("the numbers are known before the scan that follows recovery")
	}
	if err := s.CountPartition(table, 2); err != nil { // again: counted already
		t.Fatal(err)
	}
	if err := s.Scan(table); err != nil {
		t.Fatal(err)
	}
	if n := table.scans.Load(); n != 3 {
		t.Errorf("%d partitions read, want 3: each once", n)
	}
	checkSummary(t, s, counts)
	if !s.Snapshot().Tracking {
		t.Error("the numbers are not known after the scan")
	}
	click("u100") // partition 1, counted by the scan
	checkSummary(t, s, counts)
}
