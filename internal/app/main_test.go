package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/logs"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
)

// TestMain: see clickstest.Main.
func TestMain(m *testing.M) { clickstest.Main(m) }

// sendClicks sends counts[key] clicks for each key with a goka emitter,
// waiting until the broker has acknowledged each.
func sendClicks(t *testing.T, brokers []string, counts map[string]int) {
	t.Helper()
	e, err := goka.NewEmitter(brokers, clicks.Topic, new(codec.String),
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(goka.DefaultConfig())))
	if err != nil {
		t.Fatalf("create test emitter: %v", err)
	}
	for key, n := range counts {
		for i := range n {
			if err := e.EmitSync(key, fmt.Sprintf("test click %d", i)); err != nil {
				t.Fatalf("send click for %s: %v", key, err)
			}
		}
	}
	if err := e.Finish(); err != nil {
		t.Fatalf("finish test emitter: %v", err)
	}
}

// checkCountsSurviveRestart is the end-to-end test: exact counts for
// known clicks, the same counts after a restart on the same state, and
// counts that keep growing.
func checkCountsSurviveRestart(t *testing.T, getenv func(string) string, args ...string) {
	dir := t.TempDir()
	args = append([]string{"-data", dir}, args...)
	keys := clickstest.Keys(4)
	want := map[string]int{}
	for i, k := range keys {
		want[k] = i + 1
	}

	first := clickstest.StartInProcess(t, Run, getenv, append(args, "-emit=false")...)
	sendClicks(t, first.Brokers, want)
	for k, n := range want {
		first.WaitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
	}
	if status, body, err := first.Get("/" + keys[0] + "-never-clicked"); err != nil || status != 404 {
		t.Errorf("unknown key: %d %s (%v), want 404", status, body, err)
	}
	first.Stop()

	second := clickstest.StartInProcess(t, Run, getenv, append(args, "-interval", "20ms", "-users", "2")...)
	for k, n := range want {
		second.WaitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
	}
	more := map[string]int{keys[0]: 3}
	sendClicks(t, second.Brokers, more)
	second.WaitForBody("/"+keys[0], fmt.Sprintf(`{"Clicks":%d}`, want[keys[0]]+3), 30*time.Second)

	// The program's own emitter is running: user-0 grows.
	start := second.WaitForClicks("user-0", 0, 30*time.Second)
	second.WaitForClicks("user-0", start, 30*time.Second)
	second.Stop()
}

func TestEndToEndEmbeddedBroker(t *testing.T) {
	t.Parallel()
	checkCountsSurviveRestart(t, nil)
}

func TestEndToEndEmbeddedThreeBrokers(t *testing.T) {
	t.Parallel()
	checkCountsSurviveRestart(t, nil, "-broker-count", "3", "-replication", "3")
}

// TestEndToEndKafka runs against a real cluster: make restart, then
// make test-kafka (KAFKA_BROKERS=127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094).
func TestEndToEndKafka(t *testing.T) {
	brokers := os.Getenv("KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("KAFKA_BROKERS is not set; run `make restart` and `make test-kafka` to test against real Kafka")
	}
	checkCountsSurviveRestart(t, os.Getenv)
}

// Clicks sent before the processor ever ran are counted: a new group
// starts at the oldest offset.
func TestClicksBeforeFirstProcessorAreCounted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := clickstest.Keys(2)
	want := map[string]int{keys[0]: 5, keys[1]: 2}

	idle := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false", "-process=false", "-serve=false")
	sendClicks(t, idle.Brokers, want)
	idle.Stop()

	in := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	for k, n := range want {
		in.WaitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
	}
}

func TestStartupErrors(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown flag", []string{"-nope"}, 2, "flag provided but not defined"},
		{"extra argument", []string{"main.go"}, 2, "unexpected arguments"},
		{"malformed brokers", []string{"-brokers", "localhost"}, 2, `"localhost" is not host:port`},
		{"bad port", []string{"-brokers", "localhost:99999"}, 2, "invalid port"},
		{"zero users", []string{"-users", "0"}, 2, "-users must be at least 1"},
		{"zero partitions", []string{"-partitions", "0"}, 2, "-partitions must be at least 1"},
		{"too many partitions", []string{"-partitions", "1001"}, 2, "-partitions must be at most 1000"},
		{"bad interval", []string{"-interval", "-1s"}, 2, "-interval must be positive"},
		{"negative broker keep", []string{"-broker-keep-mib", "-1"}, 2, "-broker-keep-mib must be at least 0"},
		{"negative disk floor", []string{"-broker-min-free-mib", "-1"}, 2, "-broker-min-free-mib must be at least 0"},
		{"negative repair wait", []string{"-repair-group-wait", "-1s"}, 2, "-repair-group-wait must be at least 0"},
		{"bad topic", []string{"-topic", "user clicks"}, 2, `-topic: topic "user clicks": Kafka allows only`},
		{"the table as topic", []string{"-topic", "mini-group-table"}, 2, "-topic: mini-group-table is the group's own topic"},
		{"nothing to do", []string{"-brokers", "127.0.0.1:9092", "-emit=false", "-process=false", "-serve=false"}, 2, "nothing to do"},
		{"data dir is a file", []string{"-data", filepath.Join(file, "data")}, 1, "create data directory"},
		{"busy HTTP port", []string{"-listen", busy.Addr().String()}, 1, "address already in use"},
		{"busy broker port", []string{"-listen", "127.0.0.1:0", "-broker-listen", busy.Addr().String()}, 1, "address already in use"},
		{"unreachable broker", []string{"-listen", "127.0.0.1:0", "-brokers", "127.0.0.1:1", "-connect-timeout", "2s"}, 1, "cannot reach Kafka at 127.0.0.1:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-data", t.TempDir()}, tc.args...)
			stderr := clickstest.NewBuffer()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Run(ctx, args, func(string) string { return "" }, io.Discard, stderr)
			if err == nil {
				t.Fatalf("run %v succeeded, want an error", args)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			var msg bytes.Buffer
			if code := ExitCode(err, &msg); code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			if !strings.HasPrefix(msg.String(), "clicks: ") {
				t.Errorf("error report %q lacks the program name", msg.String())
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	stderr := clickstest.NewBuffer()
	err := Run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, stderr)
	if !errors.Is(err, flag.ErrHelp) || ExitCode(err, io.Discard) != 0 {
		t.Fatalf("-h: %v, want flag.ErrHelp and exit 0", err)
	}
	for _, f := range []string{"-brokers", "-broker-listen", "-data", "-listen", "-interval", "-users", "-quiet", "-emit", "-process", "-serve", "-replication", "-topic", "KAFKA_BROKERS", "CLICKS_TOPIC"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("usage does not mention %s", f)
		}
	}
}

func TestKafkaBrokersFromEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{"KAFKA_BROKERS": "kafka-a:9092, kafka-b:9093"}
	cfg, err := parseFlags(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.brokers, ","); got != "kafka-a:9092,kafka-b:9093" {
		t.Errorf("brokers %q from KAFKA_BROKERS", got)
	}
	cfg, err = parseFlags([]string{"-brokers", ""}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.brokers) != 0 {
		t.Errorf("-brokers= should override KAFKA_BROKERS and mean embedded, got %v", cfg.brokers)
	}
	cfg, err = parseFlags(nil, func(k string) string { return map[string]string{"CLICKS_TOPIC": "user-click"}[k] }, io.Discard)
	if err != nil || cfg.topic != "user-click" {
		t.Errorf("CLICKS_TOPIC=user-click: topic %q (%v)", cfg.topic, err)
	}
	cfg, err = parseFlags([]string{"-topic", "user-clicks"}, func(k string) string { return map[string]string{"CLICKS_TOPIC": "user-click"}[k] }, io.Discard)
	if err != nil || cfg.topic != "user-clicks" {
		t.Errorf("-topic should override CLICKS_TOPIC: topic %q (%v)", cfg.topic, err)
	}
	// A bad value is named by where it came from.
	_, err = parseFlags(nil, func(k string) string { return map[string]string{"KAFKA_BROKERS": "kafka-a"}[k] }, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "KAFKA_BROKERS: ") {
		t.Errorf("bad KAFKA_BROKERS: %v, want an error that starts with KAFKA_BROKERS", err)
	}
	if _, err = parseFlags([]string{"-brokers", "kafka-a"}, func(string) string { return "" }, io.Discard); err == nil || !strings.HasPrefix(err.Error(), "-brokers: ") {
		t.Errorf("bad -brokers: %v, want an error that starts with -brokers", err)
	}
}

// The roles run as separate processes against one broker process, as the
// README shows.
func TestRolesInSeparateInstances(t *testing.T) {
	t.Parallel()
	broker := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-emit=false", "-process=false", "-serve=false")
	brokers := strings.Join(broker.Brokers, ",")
	clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", brokers, "-emit=false", "-serve=false")
	view := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", brokers, "-emit=false", "-process=false")
	emitter := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", brokers, "-process=false", "-serve=false", "-users", "1", "-interval", "10ms")

	key := clickstest.Keys(1)[0]
	sendClicks(t, broker.Brokers, map[string]int{key: 7})
	view.WaitForBody("/"+key, `{"Clicks":7}`, 30*time.Second)
	clickstest.WaitFor(t, 30*time.Second, "the view to show a click of the emitter instance", func() (bool, string) {
		return view.Clicks("user-0") >= 1, "none\nemitter stderr:\n" + emitter.LastLines(40)
	})
}

// A start that fails leaves nothing behind: the HTTP port it had bound is
// free again, and so is the broker's.
func TestFailedStartReleasesPorts(t *testing.T) {
	httpAddr := clickstest.FreePort(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	args := []string{"-data", t.TempDir(), "-listen", fmt.Sprintf("127.0.0.1:%d", httpAddr), "-broker-listen", busy.Addr().String()}
	if err := Run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Fatal("run succeeded on a busy broker port")
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", httpAddr))
	if err != nil {
		t.Fatalf("the HTTP port is still held after the failed start: %v", err)
	}
	ln.Close()

	// A failure after the broker has started: a replication factor the
	// single embedded broker cannot give makes creating the topics fail.
	brokerPort := clickstest.FreePort(t)
	stderr := clickstest.NewBuffer()
	args = []string{"-data", t.TempDir(), "-listen", "127.0.0.1:0", "-broker-listen", fmt.Sprintf("127.0.0.1:%d", brokerPort), "-replication", "3"}
	err = Run(context.Background(), args, func(string) string { return "" }, io.Discard, stderr)
	if err == nil || !strings.Contains(err.Error(), "create topic") {
		t.Fatalf("run with -replication 3 on one broker: %v, want a topic creation error\n%s", err, stderr.String())
	}
	ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", brokerPort))
	if err != nil {
		t.Fatalf("the broker port is held after the failed start: %v", err)
	}
	ln.Close()
}

// The [proc] lines are buffered but reach stdout within the flush
// interval, whole, and all of them by the final flush.
func TestProcOutput(t *testing.T) {
	t.Parallel()
	w := clickstest.NewBuffer()
	o := logs.Lock(bufio.NewWriterSize(w, 64<<10))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		flushPeriodically(ctx, o, 5*time.Millisecond, slog.New(slog.DiscardHandler))
		close(done)
	}()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				fmt.Fprintf(o, "[proc] key: user-%d clicks: %d, msg: x\n", p, i)
			}
		})
	}
	wg.Wait()
	clickstest.WaitFor(t, 5*time.Second, "4000 lines flushed", func() (bool, string) {
		n := strings.Count(w.String(), "\n")
		return n >= 4000, fmt.Sprintf("%d lines", n)
	})
	if n := strings.Count(w.String(), "\n"); n != 4000 {
		t.Fatalf("%d lines flushed, want 4000", n)
	}
	for _, line := range strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n") {
		if !regexp.MustCompile(`^\[proc\] key: user-\d clicks: \d+, msg: x$`).MatchString(line) {
			t.Fatalf("a line came out broken: %q", line)
		}
	}
	cancel()
	<-done
	fmt.Fprintln(o, "last")
	if err := o.Flush(); err != nil || !strings.HasSuffix(w.String(), "last\n") {
		t.Errorf("Flush: %v; the last line is missing", err)
	}
}
