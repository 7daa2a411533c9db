package app

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
	stopWithSIGTERM(t, p)

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

// A segment of the table's changelog truncated to nothing while the
// program was stopped: the local tables, of the same incarnation of the
// table, still hold the counts, so they are written back to the
// changelog, not removed; the counts keep, and so does the changelog
// for the next reader.
func TestTruncatedTableIsWrittenBack(t *testing.T) {
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
	stopWithSIGTERM(t, p)

	part := clicks.KeyPartition("user-0", clicks.DefaultPartitions)
	var users int
	for _, k := range emitterUsers() {
		if clicks.KeyPartition(k, clicks.DefaultPartitions) == part {
			users++
		}
	}
	damageSegment(t, dir, string(clicks.Table), part, 0)

	p = startProcess(t, bin, args...)
	addr = waitForLog(t, p, brokersRE)
	m := writtenBackRE.FindStringSubmatch(waitForLogLine(t, p, writtenBackRE))
	if m[1] != strconv.Itoa(int(part)) || m[3] != strconv.Itoa(users) {
		t.Errorf("wrote back %s values to partition %s, want the %d users of partition %d", m[3], m[1], users, part)
	}
	t.Logf("reported: %s", m[0])
	if strings.Contains(p.stderr.String(), "rebuilding it from the changelog") {
		t.Errorf("a local table was removed:\n%s", p.stderr)
	}
	in = &instance{t: t, url: viewURL(t, p), stderr: p.stderr}
	waitForUserTotal(t, in, n)
	// The changelog holds the counts again: a reader without a local
	// table (a new view) finds them there.
	if got := recordsPerKey(t, []string{addr}, string(clicks.Table)); got["user-0"] == 0 {
		t.Errorf("the changelog holds no count of user-0 after the write-back: %v", got)
	}
	writeOneClickBatches(t, addr, n)
	waitForUserTotal(t, in, 2*n)
}

// waitForLogLine waits until the process logs a line re matches and
// returns the whole match.
func waitForLogLine(t *testing.T, p *process, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindString(p.stderr.String()); m != "" {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no line matching %v within 30s:\n%s", re, p.stderr)
	return ""
}
