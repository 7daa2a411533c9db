package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// buildClicks compiles the program, for tests that need a real process.
func buildClicks(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "clicks")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var sentRE = regexp.MustCompile(`msg="emitter stopped" sent=(\d+) failed=(\d+)`)

// SIGINT and SIGTERM stop the program with status 0, and every click the
// emitter had acknowledged is in the topic and gets counted exactly once.
func TestSignalStopsCleanlyAndLosesNothing(t *testing.T) {
	bin := buildClicks(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			var stderr syncBuffer
			cmd := exec.Command(bin, "-data", dir, "-listen", "127.0.0.1:0", "-broker-listen", "127.0.0.1:0", "-interval", "5ms", "-quiet")
			cmd.Stderr = &stderr
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
			in := &instance{t: t, url: url, stderr: &stderr}
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
			inTopic := recordsPerKey(t, again.brokers, string(topic))
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

// A fatal error in one part stops the others and run returns it: here the
// processor meets a table value that is not JSON.
func TestFatalProcessorErrorStopsProgram(t *testing.T) {
	dir := t.TempDir()
	key := testKeys(1)[0]
	broker := startClicks(t, nil, "-data", dir, "-emit=false", "-process=false", "-serve=false")
	writeTableValue(t, broker.brokers, key, []byte("not json"))
	broker.stop()

	in := startClicks(t, nil, "-data", dir, "-emit=false")
	sendClicks(t, in.brokers, map[string]int{key: 1})
	select {
	case err := <-in.done:
		in.stopped = true
		if err == nil || !regexp.MustCompile(`(?s)processor: .*decode user`).MatchString(err.Error()) {
			t.Fatalf("run returned %v, want the processor's decode error", err)
		}
		var msg syncBuffer
		if exitCode(err, &msg) != 1 {
			t.Errorf("exit code %d, want 1", exitCode(err, &msg))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("program still runs 30s after the processor met a bad table value\nstderr:\n%s", in.stderr)
	}
}

// writeTableValue writes a raw value for key into the group table, in the
// partition goka's hasher puts key in.
func writeTableValue(t *testing.T, brokers []string, key string, value []byte) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewCustomHashPartitioner(goka.DefaultHasher())
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(table), Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value)}); err != nil {
		t.Fatalf("write %s to %s: %v", key, table, err)
	}
}
