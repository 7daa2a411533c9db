package app

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clicks/internal/clickstest"
	"clicks/internal/metrics/metricstest"
)

// mountTmpfs mounts a tmpfs of size MiB on a new directory, for the test.
func mountTmpfs(t *testing.T, mib int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(mib)+"m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs (CI runs as root): %v: %s", err, out)
		}
		t.Skipf("mounting a tmpfs needs root (CI runs as root and fails here): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillTo writes a file in dir that leaves about free bytes free.
func fillTo(t *testing.T, dir string, free uint64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := uint64(st.Bavail) * uint64(st.Bsize)
	if avail <= free {
		t.Fatalf("%s has %d bytes free, fewer than the %d to leave", dir, avail, free)
	}
	name := filepath.Join(dir, "filler")
	if err := os.WriteFile(name, make([]byte, avail-free), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// diskFullMsg begins the embedded broker's line about its nearly full
// disk, and the note it gives a failed part's line.
const diskFullMsg = "the embedded broker's disk is nearly full"

// diskFullRE matches the embedded broker's line about its nearly full
// disk.
var diskFullRE = regexp.MustCompile(`msg="` + diskFullMsg)

// The embedded broker's disk fills up under a fast emitter: the broker
// refuses writes instead of acknowledging clicks it cannot write, the
// program says so once per interval, not once per click, and when space
// returns everything resumes by itself. Every acknowledged click is in
// the topic, and every click in the topic is counted once.
func TestDiskFullLosesNoAcknowledgedClick(t *testing.T) {
	if testing.Short() {
		t.Skip("disk test skipped with -short")
	}
	disk := mountTmpfs(t, 48)
	brokerDir := filepath.Join(disk, "data")
	broker := clickstest.StartProcess(t, "-data", brokerDir, "-broker-listen", "127.0.0.1:0", "-emit=false", "-process=false", "-serve=false",
		"-broker-keep-mib", "0", "-broker-min-free-mib", "8")
	addr := broker.WaitForBrokers()[0]
	filler := fillTo(t, disk, 12<<20)
	appDir := t.TempDir()
	app := clickstest.StartProcess(t, "-data", appDir, "-brokers", addr, "-listen", "127.0.0.1:0", "-interval", "200us", "-quiet")
	app.URL() // running: its view is open

	broker.WaitForLog(diskFullRE, 2*time.Minute)
	// Full for a while, the emitter trying all along: the broker's second
	// line comes 10 s after the first, with how many writes it refused
	// meanwhile; until then each part has said it about once.
	broker.WaitForLog(regexp.MustCompile(diskFullRE.String()+`[^\n]* repeated=\d+`), time.Minute)
	if n := strings.Count(app.Log(), `msg="click not sent"`); n > 3 {
		t.Errorf("the emitter logged %d lines of clicks not sent while the disk was full for 10 s, want one per 10 s", n)
	}
	if n := len(diskFullRE.FindAllString(broker.Log(), -1)); n > 3 {
		t.Errorf("the broker logged %d lines of a full disk in 10 s, want one per 10 s", n)
	}

	// Space returns: the clicks flow again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before, _ := metricstest.Value(metricstest.Scrape(t, app.Get), "clicks_emitted_total")
	app.WaitForMetric(60*time.Second, fmt.Sprintf("the emitter to resume after space returned (%v clicks emitted before)", before),
		func(now float64) bool { return now > before+100 }, "clicks_emitted_total")

	// Stop: what the emitter had acknowledged must all be in the topic.
	app.Stop()
	emitterSummary(t, app).checkInTopic(t, []string{addr})
	checkExactlyOnce(t, "-data", appDir, "-brokers", addr)
}

// fillUp writes a file in dir until the filesystem has no space left.
func fillUp(t *testing.T, dir string) string {
	t.Helper()
	name := filepath.Join(dir, "filler-all")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	for _, n := range []int{64 << 10, 4 << 10, 512} { // the last bytes too
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	return name
}

// The whole program (broker, emitter, processor, view) on a disk that
// fills up to the last byte under it: the broker's log, the local
// tables and the groups' offsets all find no space. It does not exit: the
// parts that fail say why, naming the disk, once per interval, and are
// run again; when space returns everything resumes by itself, and every
// acknowledged click is in the topic and counted once.
func TestDiskFullWholeProgramKeepsRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("disk test skipped with -short")
	}
	disk := mountTmpfs(t, 64)
	dataDir := filepath.Join(disk, "data")
	app := clickstest.StartProcess(t, "-data", dataDir, "-listen", "127.0.0.1:0", "-broker-listen", "127.0.0.1:0",
		"-interval", "200us", "-quiet", "-broker-keep-mib", "0", "-broker-min-free-mib", "8")
	waitForServed := func(above float64, within time.Duration) {
		t.Helper()
		app.WaitForMetric(within, fmt.Sprintf("more than %v clicks served", above), func(v float64) bool { return v > above }, "clicks_served")
	}
	waitForServed(1000, time.Minute)

	// Whether a part meets the full disk (a click counted as the disk
	// fills, whose table write the broker refuses; then local tables
	// that find no space) depends on timing: on a busy machine the
	// processor may have counted every click before, and nothing fails.
	// So up to three rounds of filling the disk and freeing it.
	var filler string
	for round := 1; ; round++ {
		refused, ok := metricstest.Value(metricstest.Scrape(t, app.Get), "clicks_broker_writes_refused_total")
		if !ok {
			t.Fatal("no clicks_broker_writes_refused_total in /-/metrics")
		}
		filler = fillUp(t, disk)
		logged := len(app.Log())
		app.WaitForMetric(2*time.Minute, fmt.Sprintf("the embedded broker to refuse writes after the disk filled (%v refused before)", refused),
			func(v float64) bool { return v > refused }, "clicks_broker_writes_refused_total")
		// Some seconds more with no byte free, for the local tables to find out.
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-app.Done():
				t.Fatalf("the program exited with the disk full (%v):\n%s", app.Err(), app.LastLines(40))
			case <-time.After(time.Until(deadline)):
			}
		}
		if n := checkDiskFullLines(t, app.Log()[logged:]); n > 0 || round == 3 {
			if n == 0 {
				t.Error("no part failed with the disk full to the last byte in three rounds: the test tested no failure's line")
			}
			break
		}
		t.Logf("round %d: no part failed with the disk full; freeing it and filling it again", round)
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		before, ok := metricstest.Value(metricstest.Scrape(t, app.Get), "clicks_served")
		if !ok {
			t.Fatal("no clicks_served in /-/metrics")
		}
		waitForServed(before+1000, 2*time.Minute)
	}

	// Space returns: the clicks are emitted and counted again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before, ok := metricstest.Value(metricstest.Scrape(t, app.Get), "clicks_served")
	if !ok {
		t.Fatal("no clicks_served in /-/metrics")
	}
	waitForServed(before+1000, 2*time.Minute)

	app.Stop()
	e := emitterSummary(t, app)
	in := clickstest.StartInProcess(t, Run, nil, "-data", dataDir, "-emit=false", "-broker-keep-mib", "0", "-broker-min-free-mib", "8")
	e.checkInTopic(t, in.Brokers)
	matchTopic(t, in.Brokers, in)
}

// checkDiskFullLines checks the lines logged while the disk was full:
// few warnings and errors, each failed part's line naming the disk, none
// of kilobytes, failed parts once per pause. It returns how many parts
// failed.
func checkDiskFullLines(t *testing.T, logged string) int {
	t.Helper()
	var errorLines []string
	for _, line := range strings.Split(logged, "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
			errorLines = append(errorLines, line)
		}
	}
	t.Logf("with the disk full for 15 s and more, %d warnings and errors; the last:\n%s", len(errorLines), clickstest.LastLines(strings.Join(errorLines, "\n"), 15))
	if len(errorLines) > 60 {
		t.Errorf("%d warnings and errors with the disk full, want each part's once per interval:\n%s", len(errorLines), clickstest.LastLines(strings.Join(errorLines, "\n"), 40))
	}
	failures := 0
	for _, line := range errorLines {
		if strings.Contains(line, " failed; starting it again") {
			failures++
			if !strings.Contains(line, `disk="`+diskFullMsg) {
				t.Errorf("a part failed with the disk full, and its line does not say so: %s", line)
			}
		}
		if len(line) > 2000 {
			t.Errorf("a line of %d bytes: %.300s…", len(line), line)
		}
	}
	// The processor and the view, each once per pause (1, 2, 4, 8, 16 s…).
	if failures > 12 {
		t.Errorf("%d lines of failed parts, want each part's once per pause", failures)
	}
	return failures
}
