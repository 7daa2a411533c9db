package app

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clicks/internal/clicks"
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
	bin := buildClicks(t)
	brokerDir := filepath.Join(disk, "data")
	broker := startProcess(t, bin, "-data", brokerDir, "-broker-listen", "127.0.0.1:0", "-emit=false", "-process=false", "-serve=false",
		"-broker-keep-mib", "0", "-broker-min-free-mib", "8")
	addr := waitForLog(t, broker, brokersRE)
	filler := fillTo(t, disk, 12<<20)
	appDir := t.TempDir()
	app := startProcess(t, bin, "-data", appDir, "-brokers", addr, "-listen", "127.0.0.1:0", "-interval", "200us", "-quiet")
	base := viewURL(t, app)

	fullRE := regexp.MustCompile(`msg="the embedded broker's disk is nearly full`)
	waitForLogWithin(t, broker, fullRE, 2*time.Minute)
	// Full for a while, the emitter trying all along: the broker's second
	// line comes 10 s after the first, with how many writes it refused
	// meanwhile; until then each part has said it about once.
	waitForLogWithin(t, broker, regexp.MustCompile(fullRE.String()+`[^\n]* repeated=\d+`), time.Minute)
	if n := strings.Count(app.stderr.String(), `msg="click not sent"`); n > 3 {
		t.Errorf("the emitter logged %d lines of clicks not sent while the disk was full for 10 s, want one per 10 s", n)
	}
	if n := len(fullRE.FindAllString(broker.stderr.String(), -1)); n > 3 {
		t.Errorf("the broker logged %d lines of a full disk in 10 s, want one per 10 s", n)
	}

	// Space returns: the clicks flow again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	get := (&instance{t: t, url: base}).get
	before, _ := metricstest.Value(metricstest.Scrape(t, get), "clicks_emitted_total")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		now, _ := metricstest.Value(metricstest.Scrape(t, get), "clicks_emitted_total")
		if now > before+100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emitter did not resume within 60 s after space returned:\n%s", lastLines(app.stderr.String(), 30))
		}
	}

	// Stop: what the emitter had acknowledged must all be in the topic.
	if err := app.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-app.exited:
		if err != nil {
			t.Fatalf("stop with SIGTERM: %v\n%s", err, lastLines(app.stderr.String(), 30))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM:\n%s", lastLines(app.stderr.String(), 30))
	}
	m := regexp.MustCompile(`msg="emitter stopped" sent=(\d+) failed=(\d+) unknown=(\d+)`).FindStringSubmatch(app.stderr.String())
	if m == nil {
		t.Fatalf("no emitter summary:\n%s", lastLines(app.stderr.String(), 30))
	}
	sent, _ := strconv.Atoi(m[1])
	unknown, _ := strconv.Atoi(m[3])
	inTopic := 0
	for _, n := range recordsPerKey(t, []string{addr}, string(clicks.Topic)) {
		inTopic += n
	}
	t.Logf("emitter: sent %d, failed %s, unknown %d; in the topic: %d", sent, m[2], unknown, inTopic)
	if inTopic < sent || inTopic > sent+unknown {
		t.Errorf("the topic holds %d clicks, the emitter had %d acknowledged and %d of unknown outcome", inTopic, sent, unknown)
	}
	checkExactlyOnce(t, "-data", appDir, "-brokers", addr)
}

// waitForLogWithin is waitForLog with a deadline of its own.
func waitForLogWithin(t *testing.T, p *process, re *regexp.Regexp, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); !re.MatchString(p.stderr.String()); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line matching %s within %s:\n%s", re, within, lastLines(p.stderr.String(), 30))
		}
	}
}
