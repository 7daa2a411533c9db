package repair_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
)

// A segment of user-clicks truncated to nothing while the program was
// stopped (a disk that lost a file, a careless cleanup): at the next start
// the processor says which partition lost how many clicks, instead of
// going on silently. The counts keep the clicks counted before.
func TestTruncatedClickLogIsReported(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	e := newEnv(t)
	p := e.start()
	const n = 1000
	clickstest.WriteOneClickBatches(t, e.addr, n)
	p.WaitForTotal(n)
	perKey := clickstest.RecordsPerKey(t, e.brokers(), string(clicks.Topic))
	p.Stop()

	// user-0's partition loses its log.
	var inPart int
	for key, c := range perKey {
		if clicks.KeyPartition(key, clicks.DefaultPartitions) == home {
			inPart += c
		}
	}
	e.damage(string(clicks.Topic), home, 0)

	p = e.start()
	// The log now ends at 0: all it held is lost.
	re := lineRE(lostEndMsg, fmt.Sprintf(`[^\n]* topic=%s partition=%d log_end=0 read_up_to=\d+ counted_up_to=\d+ records_lost=(\d+)`, clicks.Topic, home))
	lost, err := strconv.Atoi(p.WaitForLog(re, 30*time.Second)[1])
	if err != nil {
		t.Fatal(err)
	}
	if lost != inPart {
		t.Errorf("reported %d clicks lost in %s/%d, want the %d it held", lost, clicks.Topic, home, inPart)
	}
	// The counts keep what was counted.
	clickstest.WaitFor(t, 30*time.Second, fmt.Sprintf("user-0 to have the %d clicks counted before its log was lost", n/10), func() (bool, string) {
		got := p.Clicks("user-0")
		return got == n/10, fmt.Sprintf("%d clicks", got)
	})
	// New clicks are counted, not taken for the lost ones delivered
	// again: the program filled the lost offsets.
	clickstest.WriteOneClickBatches(t, e.addr, n)
	p.WaitForTotal(2 * n)
}

// A segment of the table's changelog truncated to nothing while the
// program was stopped: the local tables, of the same incarnation of the
// table, still hold the counts, so they are written back to the
// changelog, not removed; the counts keep, and so does the changelog
// for the next reader.
func TestTruncatedTableIsWrittenBack(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	e := newEnv(t)
	p := e.start()
	const n = 1000
	clickstest.WriteOneClickBatches(t, e.addr, n)
	p.WaitForTotal(n)
	p.Stop()

	var users int
	for _, k := range emitterUsers() {
		if clicks.KeyPartition(k, clicks.DefaultPartitions) == home {
			users++
		}
	}
	e.damage(string(clicks.Table), home, 0)

	p = e.start()
	m := p.WaitForLog(writtenBackRE, 30*time.Second)
	if m[1] != strconv.Itoa(int(home)) || m[3] != strconv.Itoa(users) {
		t.Errorf("wrote back %s values to partition %s, want the %d users of partition %d", m[3], m[1], users, home)
	}
	t.Logf("reported: %s", m[0])
	if lineOf(p.Log(), cacheRebuiltMsg) != "" {
		t.Errorf("a local table was removed:\n%s", p.Log())
	}
	p.WaitForTotal(n)
	// The changelog holds the counts again: a reader without a local
	// table (a new view) finds them there.
	if got := clickstest.RecordsPerKey(t, e.brokers(), string(clicks.Table)); got["user-0"] == 0 {
		t.Errorf("the changelog holds no count of user-0 after the write-back: %v", got)
	}
	clickstest.WriteOneClickBatches(t, e.addr, n)
	p.WaitForTotal(2 * n)
}
