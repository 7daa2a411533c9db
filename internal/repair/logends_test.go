package repair_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"clicks/internal/broker"
	"clicks/internal/clicks"
	"clicks/internal/clickstest"

	"github.com/IBM/sarama"
)

// Clicks written and acknowledged, then lost with the end of the log (as
// by a power loss without -sync) before any processor read them: neither
// the group's commit nor the table knows of them, only the log ends the
// embedded broker records every second. The start says what was lost
// and fills it; new clicks are counted.
func TestUncountedLostEndIsReported(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", clickstest.FreePort(t))
	brokerArgs := []string{"-data", filepath.Join(dir, "b"), "-broker-listen", addr, "-emit=false", "-process=false", "-serve=false"}
	home := clicks.KeyPartition("user-0", clicks.DefaultPartitions)
	click := func(i int) string { return fmt.Sprintf("click %d", i) }

	b := clickstest.StartProcess(t, brokerArgs...)
	b.WaitForBrokers()
	produceTo(t, addr, string(clicks.Topic), home, "user-0", 100, click)
	// Recorded within a second or so.
	waitForRecordedEnds(t, filepath.Join(dir, "b"), "100 clicks in user-clicks", func(e broker.TopicEnds) bool { return e.Ends[home] == 100 })
	b.Kill()
	damageSegment(t, filepath.Join(dir, "b"), string(clicks.Topic), home, 0)

	b = clickstest.StartProcess(t, brokerArgs...)
	re := lineRE(lostEndMsg, fmt.Sprintf(`[^\n]* topic=%s partition=%d log_end=0 read_up_to=0 counted_up_to=0 records_lost=0 held_up_to=100 records_lost_uncounted=100`, clicks.Topic, home))
	b.WaitForLog(re, 30*time.Second)
	b.WaitForLog(lineRE(filledMsg, `[^\n]* fillers=100`), 30*time.Second)
	p := clickstest.StartProcess(t, "-brokers", addr, "-data", filepath.Join(dir, "p"), "-listen", "127.0.0.1:0", "-emit=false", "-quiet")
	produceTo(t, addr, string(clicks.Topic), home, "user-0", 10, click)
	p.WaitForTotal(10)
	p.Stop()
	b.Stop()
}

// A partition of user-clicks that retention emptied (clicks a week old),
// reloaded by kfake with its log end back at 0: nothing was lost, so
// nothing is said to be, but the partition is filled up to where it
// ended, so that new clicks take offsets not read before.
func TestEmptiedPartitionIsFilledNotReported(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", clickstest.FreePort(t))
	brokerArgs := []string{"-data", filepath.Join(dir, "b"), "-broker-listen", addr, "-emit=false", "-process=false", "-serve=false"}
	home := clicks.KeyPartition("user-0", clicks.DefaultPartitions)

	b := clickstest.StartProcess(t, brokerArgs...)
	b.WaitForBrokers()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	producer, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: string(clicks.Topic), Partition: home, Key: sarama.StringEncoder("user-0"),
			Value: sarama.StringEncoder("old click"), Timestamp: time.Now().Add(-8 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	producer.Close()
	// Retention deletes them within 10 s; the record says so a second later.
	waitForRecordedEnds(t, filepath.Join(dir, "b"), "user-clicks emptied at 100", func(e broker.TopicEnds) bool { return e.Starts[home] == 100 })
	b.Stop()

	b = clickstest.StartProcess(t, brokerArgs...)
	b.WaitForLog(lineRE(emptiedMsg, fmt.Sprintf(`[^\n]* topic=%s partition=%d log_end=0 ended_at=100`, clicks.Topic, home)), 30*time.Second)
	b.WaitForLog(lineRE(filledMsg, `[^\n]* fillers=100`), 30*time.Second)
	if lineOf(b.Log(), lostEndMsg) != "" {
		t.Errorf("records said lost where retention had deleted them:\n%s", b.Log())
	}
	p := clickstest.StartProcess(t, "-brokers", addr, "-data", filepath.Join(dir, "p"), "-listen", "127.0.0.1:0", "-emit=false", "-quiet")
	produceTo(t, addr, string(clicks.Topic), home, "user-0", 10, func(i int) string { return fmt.Sprintf("click %d", i) })
	p.WaitForTotal(10)
	p.Stop()
	b.Stop()
}

// waitForRecordedEnds waits, up to a minute, until the log ends the
// embedded broker with data in dataDir records for user-clicks satisfy
// ok (what says).
func waitForRecordedEnds(t *testing.T, dataDir, what string, ok func(broker.TopicEnds) bool) {
	t.Helper()
	clickstest.WaitFor(t, time.Minute, "the log ends recorded to say "+what, func() (bool, string) {
		var ends broker.LogEnds
		data, err := os.ReadFile(filepath.Join(dataDir, "broker", "log-ends.json"))
		return err == nil && json.Unmarshal(data, &ends) == nil && ok(ends[string(clicks.Topic)]), fmt.Sprintf("%s, %v", data, err)
	})
}
