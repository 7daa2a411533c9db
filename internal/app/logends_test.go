package app

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"clicks/internal/broker"
	"clicks/internal/clicks"

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
	bin := buildClicks(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	brokerArgs := []string{"-data", filepath.Join(dir, "b"), "-broker-listen", addr, "-emit=false", "-process=false", "-serve=false"}
	home := clicks.KeyPartition("user-0", clicks.DefaultPartitions)
	click := func(i int) string { return fmt.Sprintf("click %d", i) }

	b := startProcess(t, bin, brokerArgs...)
	waitForLog(t, b, brokersRE)
	produceTo(t, addr, string(clicks.Topic), home, "user-0", 100, click)
	// Recorded within a second or so.
	waitForRecordedEnds(t, filepath.Join(dir, "b"), "100 clicks in user-clicks", func(e broker.TopicEnds) bool { return e.Ends[home] == 100 })
	b.kill()
	damageSegment(t, filepath.Join(dir, "b"), string(clicks.Topic), home, 0)

	b = startProcess(t, bin, brokerArgs...)
	re := regexp.MustCompile(fmt.Sprintf(`msg="the broker's log ends before[^\n]* topic=%s partition=%d log_end=0 read_up_to=0 counted_up_to=0 records_lost=0 held_up_to=100 records_lost_uncounted=100`, clicks.Topic, home))
	waitForLogLine(t, b, re)
	waitForLogLine(t, b, regexp.MustCompile(`msg="filled the offsets the log lost[^\n]* fillers=100`))
	p := startProcess(t, bin, "-brokers", addr, "-data", filepath.Join(dir, "p"), "-listen", "127.0.0.1:0", "-emit=false", "-quiet")
	produceTo(t, addr, string(clicks.Topic), home, "user-0", 10, click)
	waitForUserTotal(t, &instance{t: t, url: viewURL(t, p), stderr: p.stderr}, 10)
	stopWithSIGTERM(t, p)
	stopWithSIGTERM(t, b)
}

// A partition of user-clicks that retention emptied (clicks a week old),
// reloaded by kfake with its log end back at 0: nothing was lost, so
// nothing is said to be, but the partition is filled up to where it
// ended, so that new clicks take offsets not read before.
func TestEmptiedPartitionIsFilledNotReported(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	bin := buildClicks(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	brokerArgs := []string{"-data", filepath.Join(dir, "b"), "-broker-listen", addr, "-emit=false", "-process=false", "-serve=false"}
	home := clicks.KeyPartition("user-0", clicks.DefaultPartitions)

	b := startProcess(t, bin, brokerArgs...)
	waitForLog(t, b, brokersRE)
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
	stopWithSIGTERM(t, b)

	b = startProcess(t, bin, brokerArgs...)
	waitForLogLine(t, b, regexp.MustCompile(fmt.Sprintf(`msg="the embedded broker reloaded a partition that retention had emptied[^\n]* topic=%s partition=%d log_end=0 ended_at=100`, clicks.Topic, home)))
	waitForLogLine(t, b, regexp.MustCompile(`msg="filled the offsets the log lost[^\n]* fillers=100`))
	if strings.Contains(b.stderr.String(), `msg="the broker's log ends before`) {
		t.Errorf("records said lost where retention had deleted them:\n%s", b.stderr)
	}
	p := startProcess(t, bin, "-brokers", addr, "-data", filepath.Join(dir, "p"), "-listen", "127.0.0.1:0", "-emit=false", "-quiet")
	produceTo(t, addr, string(clicks.Topic), home, "user-0", 10, func(i int) string { return fmt.Sprintf("click %d", i) })
	waitForUserTotal(t, &instance{t: t, url: viewURL(t, p), stderr: p.stderr}, 10)
	stopWithSIGTERM(t, p)
	stopWithSIGTERM(t, b)
}

// waitForRecordedEnds waits, up to a minute, until the log ends the
// embedded broker with data in dataDir records for user-clicks satisfy
// ok (what says).
func waitForRecordedEnds(t *testing.T, dataDir, what string, ok func(broker.TopicEnds) bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var ends broker.LogEnds
		data, err := os.ReadFile(filepath.Join(dataDir, "broker", "log-ends.json"))
		if err == nil && json.Unmarshal(data, &ends) == nil && ok(ends[string(clicks.Topic)]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log ends recorded do not say %s within a minute: %s, %v", what, data, err)
		}
	}
}
