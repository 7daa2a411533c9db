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
	e := newApartEnv(t)
	b := e.startBroker()
	e.writeClicks(home, 100)
	// Recorded within a second or so.
	e.waitForRecordedEnds("100 clicks in user-clicks", func(ends broker.TopicEnds) bool { return ends.Ends[home] == 100 })
	b.Kill()
	e.damage(string(clicks.Topic), home, 0)

	b = e.startBroker()
	re := lineRE(lostEndMsg, fmt.Sprintf(`[^\n]* topic=%s partition=%d log_end=0 read_up_to=0 counted_up_to=0 records_lost=0 held_up_to=100 records_lost_uncounted=100`, clicks.Topic, home))
	b.WaitForLog(re, 30*time.Second)
	b.WaitForLog(lineRE(filledMsg, `[^\n]* fillers=100`), 30*time.Second)
	p := e.startInstance("p")
	e.writeClicks(home, 10)
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
	e := newApartEnv(t)
	b := e.startBroker()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	producer, err := sarama.NewSyncProducer(e.brokers(), cfg)
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
	e.waitForRecordedEnds("user-clicks emptied at 100", func(ends broker.TopicEnds) bool { return ends.Starts[home] == 100 })
	b.Stop()

	b = e.startBroker()
	b.WaitForLog(lineRE(emptiedMsg, fmt.Sprintf(`[^\n]* topic=%s partition=%d log_end=0 ended_at=100`, clicks.Topic, home)), 30*time.Second)
	b.WaitForLog(lineRE(filledMsg, `[^\n]* fillers=100`), 30*time.Second)
	if lineOf(b.Log(), lostEndMsg) != "" {
		t.Errorf("records said lost where retention had deleted them:\n%s", b.Log())
	}
	p := e.startInstance("p")
	e.writeClicks(home, 10)
	p.WaitForTotal(10)
	p.Stop()
	b.Stop()
}

// waitForRecordedEnds waits, up to a minute, until the log ends the
// embedded broker records for user-clicks satisfy ok (what says).
func (e *env) waitForRecordedEnds(what string, ok func(broker.TopicEnds) bool) {
	e.t.Helper()
	clickstest.WaitFor(e.t, time.Minute, "the log ends recorded to say "+what, func() (bool, string) {
		var ends broker.LogEnds
		data, err := os.ReadFile(filepath.Join(e.brokerData, "broker", "log-ends.json"))
		return err == nil && json.Unmarshal(data, &ends) == nil && ok(ends[string(clicks.Topic)]), fmt.Sprintf("%s, %v", data, err)
	})
}
