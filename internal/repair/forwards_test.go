package repair_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/repair"
)

// Clicks forwarded through the loop topic, and read there by nobody yet,
// are lost with the loop topic's log. Their partition's offset is
// committed past them (they were forwarded), so nothing would read them
// again: at start they are found, reported, and forwarded again.
//
// The processor's part is played by hand, as it is at the moment of a
// crash: clicks of user-0 in a partition not its own, their forwards in
// the loop topic, and the group's offset committed past the clicks.
func TestLostForwardsAreForwardedAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	e := newEnv(t)
	p := e.start()
	e.writeClicks(away, 50)
	p.WaitForTotal(50)
	p.Stop()

	// The broker alone: 30 more clicks, forwarded, not counted yet.
	broker := e.startBroker()
	e.forwardedNotCounted(50, 30)
	broker.Stop()

	// The loop topic's partition loses its log: the 50 forwards counted
	// and the 30 not.
	e.damage(string(clicks.Loop), home, 0)
	p = e.start()
	m := p.WaitForLog(lostForwardsRE, 30*time.Second)
	if m[1] != strconv.Itoa(int(home)) || m[2] != "30" {
		t.Errorf("reported %s forwards lost in partition %s, want the 30 of partition %d:\n%s", m[2], m[1], home, p.Log())
	}
	t.Logf("reported: %s", m[0])
	p.WaitForTotal(80)
	// New clicks outside user-0's partition: forwarded, counted.
	e.writeClicks(away, 20)
	p.WaitForTotal(100)
}

// The first forwards ever from one partition to another, not counted
// yet, lost with the end of a loop partition whose log ends no lower
// than the group's commit (nothing had been read from it): the loop
// partition does not look damaged, and nothing counted or waiting says
// where to look from. The start-up check's look at the last clicks below
// each commit finds them.
func TestFirstForwardsLostFromTheLoopAreForwardedAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	e := newEnv(t)
	// user-0's own clicks only: nothing forwarded yet.
	p := e.start()
	e.writeClicks(home, 40)
	p.WaitForTotal(40)
	p.Stop()

	// The broker alone: 30 clicks outside user-0's partition, forwarded,
	// not counted yet.
	broker := e.startBroker()
	e.forwardedNotCounted(0, 30)
	broker.Stop()

	e.damage(string(clicks.Loop), home, 0)
	// Nor do the log ends the broker recorded show the loss: as when it
	// took only what was written in the last second before the broker
	// stopped, after its last record of them.
	if err := os.Remove(filepath.Join(e.brokerData, "broker", "log-ends.json")); err != nil {
		t.Fatal(err)
	}
	p = e.start()
	m := p.WaitForLog(lostForwardsRE, 30*time.Second)
	if m[1] != strconv.Itoa(int(home)) || m[2] != "30" {
		t.Errorf("reported %s forwards lost in partition %s, want the 30 of partition %d:\n%s", m[2], m[1], home, p.Log())
	}
	if lostLineRE.MatchString(p.Log()) {
		t.Errorf("the loop partition was found damaged by its end, which is not what this tests:\n%s", p.Log())
	}
	p.WaitForTotal(70)
	p.Stop()
}

// The embedded broker runs in a process of its own and fills the end a
// loop partition lost before the processor's instance starts, so that
// instance no longer sees the end lost. The fillers just below the
// group's commit tell it: it looks for the lost forwards from the last
// one counted, not only among the last 50,000 clicks, and counts every
// one of them, also those more than 50,000 clicks back.
func TestFilledLoopEndIsStillKnownDamaged(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	e := newApartEnv(t)
	broker := e.startBroker()
	p := e.startInstance("p")
	e.writeClicks(away, 10)
	p.WaitForTotal(10)
	p.Stop()

	// 60,000 more clicks outside user-0's partition, forwarded and not
	// counted yet: the loop topic was read far behind them.
	const more = 60_000
	k := e.kafka()
	id, err := k.TopicID(string(clicks.Topic))
	if err != nil {
		t.Fatal(err)
	}
	clickRecords := make([][2][]byte, more)
	forwards := make([][2][]byte, more)
	for i := range more {
		clickRecords[i] = [2][]byte{[]byte("user-0"), fmt.Appendf(nil, "click %d", 10+i)}
		forwards[i] = [2][]byte{[]byte("user-0"), fmt.Appendf(nil, `{"Partition":%d,"Offset":%d,"TopicID":%q}`, away, 10+i, id)}
	}
	if _, err := repair.Append(k, string(clicks.Topic), away, clickRecords); err != nil {
		t.Fatal(err)
	}
	if _, err := repair.Append(k, string(clicks.Loop), home, forwards); err != nil {
		t.Fatal(err)
	}
	if err := repair.Rewind(e.client(), string(clicks.Group), string(clicks.Topic), away, 10+more); err != nil {
		t.Fatal(err)
	}
	broker.Stop()

	// The loop partition loses everything: the 10 forwards counted (below
	// the commit: the broker fills them) and the 60,000 not.
	segs, _ := e.segments(string(clicks.Loop), home)
	for _, seg := range segs {
		if err := os.Truncate(seg, 0); err != nil {
			t.Fatal(err)
		}
	}
	broker = e.startBroker()
	broker.WaitForLog(lineRE(filledMsg, `[^\n]* topic=`+string(clicks.Loop)), 30*time.Second)
	p = e.startInstance("p")
	m := p.WaitForLog(lostForwardsRE, 30*time.Second)
	if m[1] != strconv.Itoa(int(home)) || m[2] != strconv.Itoa(more) {
		t.Errorf("reported %s forwards lost in partition %s, want the %d of partition %d:\n%s", m[2], m[1], more, home, p.Log())
	}
	p.WaitForTotal(10 + more)
	p.Stop()
	broker.Stop()
}
