package app

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"clicks/internal/clicks"
)

// A segment of user-clicks truncated to nothing while the program was
// stopped (a disk that lost a file, a careless cleanup): at the next start
// the processor says which partition lost how many clicks, instead of
// going on silently. The counts keep the clicks counted before.
func TestTruncatedClickLogIsReported(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	bin := buildClicks(t)
	dir := t.TempDir()
	args := []string{"-data", dir, "-broker-listen", "127.0.0.1:0", "-listen", "127.0.0.1:0", "-emit=false", "-quiet"}
	p := startProcess(t, bin, args...)
	addr := waitForLog(t, p, brokersRE)
	const n = 1000
	writeOneClickBatches(t, addr, n)
	in := &instance{t: t, url: viewURL(t, p), stderr: p.stderr}
	waitForUserTotal(t, in, n)
	perKey := recordsPerKey(t, []string{addr}, string(clicks.Topic))
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("stop with SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30 s after SIGTERM")
	}

	// user-0's partition loses its log.
	part := clicks.KeyPartition("user-0", clicks.DefaultPartitions)
	var inPart int
	for key, c := range perKey {
		if clicks.KeyPartition(key, clicks.DefaultPartitions) == part {
			inPart += c
		}
	}
	segment := filepath.Join(dir, "broker", "partitions", fmt.Sprintf("%s-%d", clicks.Topic, part), "0.dat")
	if err := os.Truncate(segment, 0); err != nil {
		t.Fatal(err)
	}

	p = startProcess(t, bin, args...)
	addr = waitForLog(t, p, brokersRE)
	// The log now ends at 0: all it held is lost.
	re := regexp.MustCompile(fmt.Sprintf(`msg="the broker's log ends before what the processor had read or counted[^\n]* topic=%s partition=%d log_end=0 read_up_to=\d+ counted_up_to=\d+ records_lost=(\d+)`, clicks.Topic, part))
	lost, err := strconv.Atoi(waitForLog(t, p, re))
	if err != nil {
		t.Fatal(err)
	}
	if lost != inPart {
		t.Errorf("reported %d clicks lost in %s/%d, want the %d it held", lost, clicks.Topic, part, inPart)
	}
	// The counts keep what was counted.
	in = &instance{t: t, url: viewURL(t, p), stderr: p.stderr}
	got := -1
	for deadline := time.Now().Add(30 * time.Second); got != n/10 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got = in.clicks("user-0")
	}
	if got != n/10 {
		t.Errorf("user-0 has %d clicks after its log was lost, want the %d counted before", got, n/10)
	}
	// New clicks are counted, not taken for the lost ones delivered
	// again: the program filled the lost offsets.
	writeOneClickBatches(t, addr, n)
	waitForUserTotal(t, in, 2*n)
}
