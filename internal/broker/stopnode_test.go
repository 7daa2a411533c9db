package broker

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// kfake's RemoveNode closes the broker's listener but not the connections
// it had accepted, which stay open: StopNode closes them too, and
// moves its partitions; StartNode opens the same address again. The
// controller (which kfake never moves) and unknown addresses are refused.
func TestKfakeRemoveNodeKeepsConnections(t *testing.T) {
	b, err := Start(Config{Listen: "127.0.0.1:0", Count: 3, Dir: t.TempDir(), Table: "table", CompactInterval: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addrs := b.ListenAddrs()
	if err := b.CreateTopic("t", 6, nil); err != nil {
		t.Fatal(err)
	}
	for p := range int32(6) {
		if err := b.MoveTopicPartition("t", p, 1); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	if err := b.StopNode(addrs[2]); err == nil || !strings.Contains(err.Error(), "controller") {
		t.Errorf("stopping the controller: %v, want an error that says so", err)
	}
	if err := b.StopNode("127.0.0.1:1"); err == nil {
		t.Error("stopping an unknown broker succeeded")
	}
	if err := b.StopNode(addrs[1]); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addrs[1], time.Second); err == nil {
		c.Close()
		t.Errorf("the stopped broker %s still accepts connections", addrs[1])
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("a connection to the stopped broker is still open: read %d, %v", n, err)
	}
	for p := range int32(6) {
		if l := b.LeaderFor("t", p); l == 1 || l < 0 {
			t.Errorf("t/%d led by node %d after node 1 stopped", p, l)
		}
	}
	if got := b.ListenAddrs(); len(got) != 2 {
		t.Errorf("brokers after the stop: %v, want two", got)
	}

	if err := b.StartNode(addrs[1]); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", addrs[1], time.Second)
	if err != nil {
		t.Fatalf("the broker started again does not accept connections: %v", err)
	}
	c.Close()
	if got := b.ListenAddrs(); len(got) != 3 {
		t.Errorf("brokers after the start: %v, want three", got)
	}
}
