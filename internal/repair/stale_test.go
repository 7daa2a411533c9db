package repair_test

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
)

// A local table ahead of a damaged changelog is written back only by an
// instance that runs the processor while no other processor of the group
// runs: a view-only instance, or a second processor instance, may hold
// values older than what a running processor wrote meanwhile, and a
// stale value written back becomes the key's last record (counts lost
// silently). They say what they did not write back and why, and keep
// their local table.
func TestStaleLocalTableIsNotWrittenBack(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	e := newApartEnv(t)
	broker := e.startBroker()
	x := e.startInstance("x")
	// In two rounds, so that each partition of the table holds more
	// than one record: goka refuses a cache that read more than the
	// first record of a changelog now empty, unless the repair set its
	// offset back (it did not reach the disk: the test failed whenever
	// the record cache had merged a partition's writes into more than
	// one record).
	const n = 1000
	x.URL() // it runs: its view is open
	clickstest.WriteOneClickBatches(t, e.addr, n/2)
	x.WaitForTotal(n / 2)
	clickstest.WriteOneClickBatches(t, e.addr, n/2)
	x.WaitForTotal(n)
	x.Stop()
	// A second copy of x's local tables, for the second case.
	if out, err := exec.Command("cp", "-a", filepath.Join(e.dir, "x"), filepath.Join(e.dir, "y")).CombinedOutput(); err != nil {
		t.Fatalf("copy local tables: %v: %s", err, out)
	}

	broker.Stop()
	e.damage(string(clicks.Table), home, 0)
	broker = e.startBroker()

	check := func(p *clickstest.Process, why string) {
		t.Helper()
		m := p.WaitForLog(notWrittenBackRE, 30*time.Second)
		if m[1] != strconv.Itoa(int(home)) || !strings.Contains(m[2], why) {
			t.Errorf("not written back: partition %s, why %q; want partition %d, why with %q", m[1], m[2], home, why)
		}
		t.Logf("reported: %s", m[0])
		if writtenBackRE.MatchString(p.Log()) {
			t.Errorf("wrote back:\n%s", p.Log())
		}
		if lineOf(p.Log(), cacheRebuiltMsg) != "" {
			t.Errorf("a local table was removed:\n%s", p.Log())
		}
	}
	// A view-only instance.
	v := e.startInstance("x", "-process=false")
	check(v, "-process=false")
	// It serves what its local table holds.
	v.WaitForTotal(n)
	v.Stop()

	// A processor instance while another member is in the processor
	// group (played by a consumer that holds its partitions and writes
	// nothing, so that nothing else changes the changelog meanwhile).
	release := e.holdGroup()
	y := e.startInstance("y")
	check(y, "members")
	// Its repair waits for the group to empty, up to the session
	// timeout, to have the lost counts counted again. A SIGTERM stops the
	// wait: it exits 0 at once and has set nothing back (the next start
	// repairs), so it does not say those counts stay lost.
	y.WaitForLog(lineRE(groupWaitMsg, ""), 30*time.Second)
	y.Stop()
	if lineOf(y.Log(), notReadAgainMsg) != "" {
		t.Errorf("the SIGTERM did not stop the wait for the group:\n%s", y.Log())
	}
	release()
	broker.Stop()
}
