package repair_test

import (
	"fmt"
	"maps"
	"os"
	"strconv"
	"testing"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/metrics/metricstest"

	"github.com/IBM/sarama"
)

// setSegmentBytes makes the broker at addr start a new segment file of
// each of topics every size bytes.
func setSegmentBytes(t *testing.T, addr string, size int, topics ...string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	v := strconv.Itoa(size)
	for _, topic := range topics {
		entries := map[string]sarama.IncrementalAlterConfigsEntry{
			"segment.bytes": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v},
		}
		if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, entries, false); err != nil {
			t.Fatalf("set segment.bytes of %s: %v", topic, err)
		}
	}
}

// removeSegment removes the first segment file of topic/p in the
// embedded broker's log that begins at or after from and is not the
// last, and returns the offsets it held, [base, next base).
func (e *env) removeSegment(topic string, p int32, from int64) (int64, int64) {
	e.t.Helper()
	t := e.t
	paths, bases := e.segments(topic, p)
	for i, b := range bases[:max(len(bases)-1, 0)] {
		if b >= from {
			if err := os.Remove(paths[i]); err != nil {
				t.Fatal(err)
			}
			return b, bases[i+1]
		}
	}
	t.Fatalf("%s/%d has no segment from offset %d on but its last: %v", topic, p, from, bases)
	return 0, 0
}

// A segment file lost from the middle of a log: of user-clicks, where
// its clicks were counted, and of the loop topic, where its forwards
// waited to be counted, forwards after them too. The broker serves on
// past the hole as if nothing were missing; at start each hole is
// reported, and the lost forwards are made again, in order, so that the
// forwards waiting after the hole do not make them look counted.
//
// In the second case, retention has deleted the first ten clicks whose
// forwards wait after the hole: skipped, those forwards cannot be made
// again, and their loss is said.
func TestHolesInTheMiddleOfTheLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	t.Run("forwards made again", func(t *testing.T) { holesInTheMiddle(t, 0) })
	t.Run("clicks of waiting forwards deleted", func(t *testing.T) { holesInTheMiddle(t, 60) })
}

// holesInTheMiddle is TestHolesInTheMiddleOfTheLogs, with the clicks of
// user-clicks' second partition below deleteBelow deleted.
func holesInTheMiddle(t *testing.T, deleteBelow int64) {
	e := newEnv(t)
	p := e.start()
	p.URL() // its view opens after the start-up repair, the topics made
	// Segments of 2 KiB: a dozen one-record batches each.
	setSegmentBytes(t, e.addr, 2<<10, string(clicks.Topic), string(clicks.Loop))
	e.writeClicks(home, 200)
	e.writeClicks(away, 50)
	p.WaitForTotal(250)
	p.Stop()

	// The broker alone: 150 more clicks of user-0 outside its
	// partition, forwarded and not counted yet, as at a crash.
	broker := e.startBroker()
	client := e.forwardedNotCounted(50, 150)
	dropped := 0
	if deleteBelow > 0 {
		admin, err := sarama.NewClusterAdminFromClient(client)
		if err != nil {
			t.Fatal(err)
		}
		if err := admin.DeleteRecords(string(clicks.Topic), map[int32]int64{away: deleteBelow}); err != nil {
			t.Fatal(err)
		}
		dropped = int(deleteBelow) - 50 // the forwards of 50 on wait
	}
	broker.Stop()

	// Counted clicks of user-clicks, and forwards not counted yet (the
	// loop partition's first 50 were counted).
	clickFrom, clickTo := e.removeSegment(string(clicks.Topic), home, 50)
	fwdFrom, fwdTo := e.removeSegment(string(clicks.Loop), home, 80)
	t.Logf("removed %s/%d offsets %d-%d and %s/%d offsets %d-%d", clicks.Topic, home, clickFrom, clickTo-1, clicks.Loop, home, fwdFrom, fwdTo-1)

	p = e.start()
	p.WaitForRepair() // what it says is in the log
	holes := map[string]string{}
	for _, m := range holeRE.FindAllStringSubmatch(p.Log(), -1) {
		holes[m[1]+"/"+m[2]] = m[3] + "-" + m[4] + " " + m[5]
	}
	want := map[string]string{
		fmt.Sprintf("%s/%d", clicks.Topic, home): fmt.Sprintf("%d-%d %d", clickFrom, clickTo-1, clickTo-clickFrom),
		fmt.Sprintf("%s/%d", clicks.Loop, home):  fmt.Sprintf("%d-%d %d", fwdFrom, fwdTo-1, fwdTo-fwdFrom),
	}
	if !maps.Equal(holes, want) {
		t.Errorf("holes reported %v, want %v:\n%s", holes, want, p.Log())
	}
	m := holedForwardsRE.FindStringSubmatch(p.Log())
	if m == nil || m[1] != strconv.Itoa(int(home)) || m[2] != strconv.FormatInt(fwdTo-fwdFrom, 10) {
		t.Errorf("forwards lost in the hole reported as %q, want %d in partition %d:\n%s", m, fwdTo-fwdFrom, home, p.Log())
	}
	// Every click counted once: those the hole took from user-clicks
	// stay counted, the forwards lost are counted now, and none of
	// those that waited after the hole twice.
	p.WaitForTotal(400 - dropped)
	if n := clickstest.RecordsPerKey(t, e.brokers(), string(clicks.Topic))["user-0"]; n != 400-int(clickTo-clickFrom)-int(deleteBelow) {
		t.Errorf("user-clicks holds %d clicks of user-0, want 400 - the %d lost - the %d deleted", n, clickTo-clickFrom, deleteBelow)
	}
	families := metricstest.Scrape(t, p.Get)
	droppedRE := errorLineRE(skippedForwardsMsg, `[^"]*" topic=\S+ partition=\d+ records_not_counted_again=(\d+)`)
	if m := droppedRE.FindStringSubmatch(p.Log()); dropped > 0 && (m == nil || m[1] != strconv.Itoa(dropped)) || dropped == 0 && m != nil {
		t.Errorf("forwards dropped reported as %q, want %d:\n%s", m, dropped, p.Log())
	}
	if got, ok := metricstest.Value(families, "clicks_not_counted_again_total"); !ok || got != float64(dropped) {
		t.Errorf("clicks_not_counted_again_total = %v (found %v), want %d", got, ok, dropped)
	}
	for topic, n := range map[string]int64{string(clicks.Topic): clickTo - clickFrom, string(clicks.Loop): fwdTo - fwdFrom} {
		if got, ok := metricstest.Value(families, "clicks_records_lost_total", "topic", topic); !ok || got != float64(n) {
			t.Errorf("clicks_records_lost_total{topic=%q} = %v (found %v), want %d", topic, got, ok, n)
		}
	}
	// New clicks, in and outside user-0's partition: all counted.
	e.writeClicks(away, 20)
	e.writeClicks(home, 10)
	p.WaitForTotal(430 - dropped)
	p.Stop()
}
