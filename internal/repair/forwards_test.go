package repair_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/kafka"
	"clicks/internal/repair"

	"github.com/IBM/sarama"
)

// produceTo writes n records of key to partition of topic, the value of
// the i-th from value(i).
func produceTo(t *testing.T, addr, topic string, partition int32, key string, n int, value func(i int) string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range n {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: partition,
			Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value(i))}); err != nil {
			t.Fatalf("write to %s/%d: %v", topic, partition, err)
		}
	}
}

// forwardedNotCounted plays the processor at a crash, with only the
// embedded broker at addr running: n more clicks of user-0 in partition
// other of user-clicks (offsets from on), their forwards in partition
// home of the loop topic, not counted, and the group's offset of other
// committed past them. It returns a client of the broker, closed at the
// test's end.
func forwardedNotCounted(t *testing.T, addr string, home, other int32, from, n int) (*kafka.Config, sarama.Client) {
	t.Helper()
	produceTo(t, addr, string(clicks.Topic), other, "user-0", n, func(i int) string { return fmt.Sprintf("click %d", from+i) })
	k := kafka.New([]string{addr}, 1, clicks.DefaultPartitions, slog.New(slog.NewTextHandler(io.Discard, nil)))
	id, err := k.TopicID(string(clicks.Topic))
	if err != nil {
		t.Fatal(err)
	}
	produceTo(t, addr, string(clicks.Loop), home, "user-0", n, func(i int) string {
		return fmt.Sprintf(`{"Partition":%d,"Offset":%d,"TopicID":%q}`, other, from+i, id)
	})
	client, err := sarama.NewClient([]string{addr}, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if err := repair.Rewind(client, string(clicks.Group), string(clicks.Topic), other, int64(from+n)); err != nil {
		t.Fatal(err)
	}
	return k, client
}

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
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", clickstest.FreePort(t))
	args := []string{"-data", dir, "-broker-listen", addr, "-listen", "127.0.0.1:0", "-emit=false", "-quiet"}
	home := clicks.KeyPartition("user-0", clicks.DefaultPartitions)
	other := (home + 1) % clicks.DefaultPartitions
	click := func(i int) string { return fmt.Sprintf("click %d", i) }

	p := clickstest.StartProcess(t, args...)
	p.WaitForBrokers()
	produceTo(t, addr, string(clicks.Topic), other, "user-0", 50, click)
	p.WaitForTotal(50)
	p.Stop()

	// The broker alone: 30 more clicks, forwarded, not counted yet.
	broker := clickstest.StartProcess(t, "-data", dir, "-broker-listen", addr, "-emit=false", "-process=false", "-serve=false")
	broker.WaitForBrokers()
	forwardedNotCounted(t, addr, home, other, 50, 30)
	broker.Stop()

	// The loop topic's partition loses its log: the 50 forwards counted
	// and the 30 not.
	damageSegment(t, dir, string(clicks.Loop), home, 0)
	p = clickstest.StartProcess(t, args...)
	m := p.WaitForLog(lostForwardsRE, 30*time.Second)
	if m[1] != strconv.Itoa(int(home)) || m[2] != "30" {
		t.Errorf("reported %s forwards lost in partition %s, want the 30 of partition %d:\n%s", m[2], m[1], home, p.Log())
	}
	t.Logf("reported: %s", m[0])
	p.WaitForTotal(80)
	// New clicks outside user-0's partition: forwarded, counted.
	produceTo(t, addr, string(clicks.Topic), other, "user-0", 20, click)
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
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", clickstest.FreePort(t))
	args := []string{"-data", dir, "-broker-listen", addr, "-listen", "127.0.0.1:0", "-emit=false", "-quiet"}
	home := clicks.KeyPartition("user-0", clicks.DefaultPartitions)
	other := (home + 1) % clicks.DefaultPartitions
	click := func(i int) string { return fmt.Sprintf("click %d", i) }

	// user-0's own clicks only: nothing forwarded yet.
	p := clickstest.StartProcess(t, args...)
	p.WaitForBrokers()
	produceTo(t, addr, string(clicks.Topic), home, "user-0", 40, click)
	p.WaitForTotal(40)
	p.Stop()

	// The broker alone: 30 clicks outside user-0's partition, forwarded,
	// not counted yet.
	broker := clickstest.StartProcess(t, "-data", dir, "-broker-listen", addr, "-emit=false", "-process=false", "-serve=false")
	broker.WaitForBrokers()
	forwardedNotCounted(t, addr, home, other, 0, 30)
	broker.Stop()

	damageSegment(t, dir, string(clicks.Loop), home, 0)
	// Nor do the log ends the broker recorded show the loss: as when it
	// took only what was written in the last second before the broker
	// stopped, after its last record of them.
	if err := os.Remove(filepath.Join(dir, "broker", "log-ends.json")); err != nil {
		t.Fatal(err)
	}
	p = clickstest.StartProcess(t, args...)
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
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", clickstest.FreePort(t))
	brokerArgs := []string{"-data", filepath.Join(dir, "b"), "-broker-listen", addr, "-emit=false", "-process=false", "-serve=false"}
	procArgs := []string{"-brokers", addr, "-data", filepath.Join(dir, "p"), "-listen", "127.0.0.1:0", "-emit=false", "-quiet"}
	home := clicks.KeyPartition("user-0", clicks.DefaultPartitions)
	other := (home + 1) % clicks.DefaultPartitions
	click := func(i int) string { return fmt.Sprintf("click %d", i) }

	broker := clickstest.StartProcess(t, brokerArgs...)
	broker.WaitForBrokers()
	p := clickstest.StartProcess(t, procArgs...)
	produceTo(t, addr, string(clicks.Topic), other, "user-0", 10, click)
	p.WaitForTotal(10)
	p.Stop()

	// 60,000 more clicks outside user-0's partition, forwarded and not
	// counted yet: the loop topic was read far behind them.
	const more = 60_000
	k := kafka.New([]string{addr}, 1, clicks.DefaultPartitions, slog.New(slog.NewTextHandler(io.Discard, nil)))
	id, err := k.TopicID(string(clicks.Topic))
	if err != nil {
		t.Fatal(err)
	}
	clickRecords := make([][2][]byte, more)
	forwards := make([][2][]byte, more)
	for i := range more {
		clickRecords[i] = [2][]byte{[]byte("user-0"), []byte(click(10 + i))}
		forwards[i] = [2][]byte{[]byte("user-0"), fmt.Appendf(nil, `{"Partition":%d,"Offset":%d,"TopicID":%q}`, other, 10+i, id)}
	}
	if _, err := repair.Append(k, string(clicks.Topic), other, clickRecords); err != nil {
		t.Fatal(err)
	}
	if _, err := repair.Append(k, string(clicks.Loop), home, forwards); err != nil {
		t.Fatal(err)
	}
	client, err := sarama.NewClient([]string{addr}, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	if err := repair.Rewind(client, string(clicks.Group), string(clicks.Topic), other, 10+more); err != nil {
		t.Fatal(err)
	}
	client.Close()
	broker.Stop()

	// The loop partition loses everything: the 10 forwards counted (below
	// the commit: the broker fills them) and the 60,000 not.
	segs, err := filepath.Glob(filepath.Join(dir, "b", "broker", "partitions", fmt.Sprintf("%s-%d", clicks.Loop, home), "*.dat"))
	if err != nil {
		t.Fatal(err)
	}
	for _, seg := range segs {
		if err := os.Truncate(seg, 0); err != nil {
			t.Fatal(err)
		}
	}
	broker = clickstest.StartProcess(t, brokerArgs...)
	broker.WaitForLog(lineRE(filledMsg, `[^\n]* topic=`+string(clicks.Loop)), 30*time.Second)
	p = clickstest.StartProcess(t, procArgs...)
	m := p.WaitForLog(lostForwardsRE, 30*time.Second)
	if m[1] != strconv.Itoa(int(home)) || m[2] != strconv.Itoa(more) {
		t.Errorf("reported %s forwards lost in partition %s, want the %d of partition %d:\n%s", m[2], m[1], more, home, p.Log())
	}
	p.WaitForTotal(10 + more)
	p.Stop()
	broker.Stop()
}
