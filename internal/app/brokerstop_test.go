package app

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"clicks/internal/broker"
	"clicks/internal/clicks"
	"clicks/internal/clickstest"
)

// One of three embedded brokers stops while clicks are written and
// counted, leading partitions of the clicks and of the table, and starts
// again later. The program carries on without a restart, counting while
// the broker is down, and in the end every click in the topic is counted
// once. kfake keeps one log for all replicas of a partition, so this tests
// the clients' side of a broker going down (connections lost, leaders
// moved, requests retried), not replicas falling out of sync: see
// internal/broker/stopnode.go and docs/operations.md.
func TestEmbeddedBrokerStoppedUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("broker stop test skipped with -short")
	}
	brokerLog := clickstest.NewBuffer()
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Count: 3, Dir: t.TempDir(), Table: string(clicks.Table), CompactInterval: time.Minute},
		slog.New(slog.NewTextHandler(brokerLog, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	addrs := b.ListenAddrs()
	victim := addrs[0]
	stop := func() {
		// The broker to stop leads half the partitions of the clicks and
		// of the table (kfake chose leaders at random).
		for p := range int32(clicks.DefaultPartitions / 2) {
			for _, topic := range []string{string(clicks.Topic), string(clicks.Table)} {
				if err := b.MoveTopicPartition(topic, p, 0); err != nil {
					t.Fatalf("move %s/%d to the broker to stop: %v", topic, p, err)
				}
			}
		}
		if err := b.StopNode(victim); err != nil {
			t.Fatal(err)
		}
		if c, err := net.DialTimeout("tcp", victim, time.Second); err == nil {
			c.Close()
			t.Fatalf("the stopped broker %s still accepts connections", victim)
		}
		for p := range int32(clicks.DefaultPartitions) {
			if l := b.LeaderFor(string(clicks.Topic), p); l == 0 {
				t.Fatalf("%s/%d is still led by the stopped broker", clicks.Topic, p)
			}
		}
	}
	start := func() {
		if err := b.StartNode(victim); err != nil {
			t.Fatal(err)
		}
	}
	countThroughBrokerDown(t, addrs, stop, start)
	checkReplication(t, addrs, 3, 2)
	if !strings.Contains(brokerLog.String(), "embedded broker stopped") {
		t.Errorf("the broker did not say it stopped:\n%s", brokerLog)
	}
}

// countThroughBrokerDown runs an emitter (every 2 ms), another client's
// writes and a processor with its view against brokers, calls stop once
// clicks are counted, checks that counting goes on, calls start, checks
// that it goes on still, and then that every click in the topic is counted
// once by the same, never restarted, instance.
func countThroughBrokerDown(t *testing.T, brokers []string, stop, start func()) {
	t.Helper()
	all := strings.Join(brokers, ",")
	counter := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", all, "-emit=false")
	emitter := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", all, "-process=false", "-serve=false", "-interval", "2ms")
	stopWriter := clickstest.StartForeignWriter(t, brokers)

	counter.WaitForClicks("user-0", 0, 30*time.Second)
	stop()
	atStop := counter.Clicks("user-0")
	// Counting goes on with the broker down (for some 5 s: 50 clicks of
	// user-0 a second), and after it is back.
	down := counter.WaitForClicks("user-0", atStop+250, 90*time.Second)
	start()
	counter.WaitForClicks("user-0", down+100, 90*time.Second)

	emitter.Stop() // the topic must stop growing before it is compared
	stopWriter()
	matchTopic(t, brokers, counter)
	if code, body, err := counter.Get("/-/ready"); err != nil || code != 200 {
		t.Errorf("/-/ready: %d %s (%v), want 200 once the brokers are back\n%s", code, body, err, counter.LastLines(30))
	}
}
