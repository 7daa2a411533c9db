package app

import (
	"bufio"
	"clicks/internal/clicks"
	"clicks/internal/metrics/metricstest"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// buildClicks compiles the program, for tests that need a real process.
func buildClicks(t testing.TB) string {
	t.Helper()
	testBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "clicks-test-bin-")
		if err != nil {
			testBinary.err = err
			return
		}
		testBinary.dir = dir
		testBinary.path = filepath.Join(dir, "clicks")
		if out, err := exec.Command("go", "build", "-o", testBinary.path, "clicks").CombinedOutput(); err != nil {
			testBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if testBinary.err != nil {
		t.Fatal(testBinary.err)
	}
	return testBinary.path
}

// testBinary is the program built once for the whole test run, and
// removed by TestMain after it.
var testBinary struct {
	once      sync.Once
	dir, path string
	err       error
}

var sentRE = regexp.MustCompile(`msg="emitter stopped" sent=(\d+) failed=(\d+)`)

// SIGINT and SIGTERM stop the program with status 0, and every click the
// emitter had acknowledged is in the topic and gets counted exactly once.
func TestSignalStopsCleanlyAndLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("signal test skipped with -short")
	}
	bin := buildClicks(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			stderr := newSyncBuffer()
			cmd := exec.Command(bin, "-data", dir, "-listen", "127.0.0.1:0", "-broker-listen", "127.0.0.1:0", "-interval", "5ms", "-quiet")
			cmd.Stderr = stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill() }) // in case the test fails before the signal
			lines := bufio.NewScanner(stdout)
			var url string
			for url == "" && lines.Scan() {
				if m := viewOpenedRE.FindStringSubmatch(lines.Text()); m != nil {
					url = m[1]
				}
			}
			if url == "" {
				t.Fatalf("no View opened line; stderr:\n%s", stderr.String())
			}
			in := &instance{t: t, url: url, stderr: stderr}
			deadline := time.Now().Add(30 * time.Second)
			for in.clicks("user-0") < 5 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			select {
			case err := <-waited:
				if err != nil {
					t.Fatalf("after %v: %v (want exit status 0)\nstderr:\n%s", sig, err, stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("still running 15s after %v\nstderr:\n%s", sig, stderr.String())
			}
			m := sentRE.FindStringSubmatch(stderr.String())
			if m == nil {
				t.Fatalf("no emitter summary in the log:\n%s", stderr.String())
			}
			sent, _ := strconv.Atoi(m[1])
			if m[2] != "0" || sent < 5 {
				t.Fatalf("emitter sent %s, failed %s; want at least 5 sent, none failed", m[1], m[2])
			}

			// Start again without the emitter: the topic holds exactly the
			// acknowledged clicks, and the counts add up to them.
			again := startClicks(t, nil, "-data", dir, "-emit=false")
			inTopic := recordsPerKey(t, again.brokers, string(clicks.Topic))
			total := 0
			for k, n := range inTopic {
				total += n
				again.waitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
			}
			if total != sent {
				t.Errorf("topic holds %d clicks, the emitter had acknowledged %d", total, sent)
			}
		})
	}
}

// Values another client wrote to the group table stop nothing: in the
// key's own partition a value that is not JSON makes the processor skip
// that user's clicks (counted by reason, logged once per interval) and
// the view answer 500 for it; a count of the original example or of the
// previous version is counted on, by clicks in the key's partition and
// by clicks forwarded from others; a value in another partition than its
// key's is never read for the key.
func TestForeignTableValuesDoNotStopTheProgram(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := testKeys(5)
	bad, elsewhere, original, previous, other := keys[0], keys[1], keys[2], keys[3], keys[4]
	away := func(key string) int32 {
		return (clicks.KeyPartition(key, clicks.DefaultPartitions) + 1) % clicks.DefaultPartitions
	}
	broker := startClicks(t, nil, "-data", dir, "-emit=false", "-process=false", "-serve=false")
	writeTableValue(t, broker.brokers, bad, -1, []byte("not json"))
	writeTableValue(t, broker.brokers, elsewhere, away(elsewhere), []byte("\xff not json"))
	writeTableValue(t, broker.brokers, original, -1, []byte(`{"Clicks":500}`))
	writeTableValue(t, broker.brokers, previous, -1, []byte(`{"Clicks":7,"Offset":3,"TopicID":"an-older-topic"}`))
	broker.stop()

	in := startClicks(t, nil, "-data", dir, "-emit=false")
	sendClicks(t, in.brokers, map[string]int{bad: 2, elsewhere: 3, original: 1, previous: 1, other: 4})
	w := writers{t: t, brokers: in.brokers}
	for _, k := range []string{bad, original, previous} {
		w.franzSend([]string{k}, away(k))
	}
	in.waitForBody("/"+elsewhere, `{"Clicks":3}`, 30*time.Second)
	in.waitForBody("/"+original, `{"Clicks":502}`, 30*time.Second)
	in.waitForBody("/"+previous, `{"Clicks":9}`, 30*time.Second)
	in.waitForBody("/"+other, `{"Clicks":4}`, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := metricstest.Value(metricstest.Scrape(t, in.get), "clicks_skipped_total", "reason", "unreadable_value")
		if got == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("clicks_skipped_total{reason=\"unreadable_value\"} = %v, want 3\nstderr:\n%s", got, in.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, body, err := in.get("/" + bad); err != nil || status != 500 {
		t.Errorf("GET /%s: %d %s (%v), want 500", bad, status, body, err)
	}
	if n := strings.Count(in.stderr.String(), "table value cannot be read skipped"); n != 1 {
		t.Errorf("%d log lines for the 3 skipped clicks, want 1 (once per interval)\nstderr:\n%s", n, in.stderr)
	}
	select {
	case err := <-in.done:
		in.stopped = true
		t.Fatalf("the program stopped: %v\nstderr:\n%s", err, in.stderr)
	default:
	}
}

// writeTableValue writes a raw value for key into the group clicks.Table, in
// partition, or with partition -1 in the one goka's hasher puts key in.
func writeTableValue(t *testing.T, brokers []string, key string, partition int32, value []byte) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewCustomHashPartitioner(goka.DefaultHasher())
	if partition >= 0 {
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
	}
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(clicks.Table), Key: sarama.StringEncoder(key), Partition: partition, Value: sarama.ByteEncoder(value)}); err != nil {
		t.Fatalf("write %s to %s: %v", key, clicks.Table, err)
	}
}
