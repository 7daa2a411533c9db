package app

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// emitterStoppedRE matches the line in which the emitter says, as it
// stops, how many clicks it sent (acknowledged), failed to send, and sent
// with an unknown outcome.
var emitterStoppedRE = regexp.MustCompile(`msg="emitter stopped" sent=(\d+) failed=(\d+) unknown=(\d+)`)

// emitted is what an emitter said it did as it stopped.
type emitted struct{ sent, failed, unknown int }

// emitterSummary reads what the emitter of p, stopped, said it did.
func emitterSummary(t *testing.T, p clickstest.Running) emitted {
	t.Helper()
	m := emitterStoppedRE.FindStringSubmatch(p.Log())
	if m == nil {
		t.Fatalf("no emitter summary in the log:\n%s", p.LastLines(30))
	}
	var e emitted
	for i, n := range []*int{&e.sent, &e.failed, &e.unknown} {
		*n, _ = strconv.Atoi(m[i+1])
	}
	return e
}

// checkInTopic checks that the topic at brokers holds every click the
// emitter had acknowledged, and no more than those and the ones of
// unknown outcome.
func (e emitted) checkInTopic(t *testing.T, brokers []string) {
	t.Helper()
	inTopic := 0
	for _, n := range clickstest.RecordsPerKey(t, brokers, string(clicks.Topic)) {
		inTopic += n
	}
	t.Logf("emitter: sent %d, failed %d, unknown %d; in the topic: %d", e.sent, e.failed, e.unknown, inTopic)
	if inTopic < e.sent || inTopic > e.sent+e.unknown {
		t.Errorf("the topic holds %d clicks, the emitter had %d acknowledged and %d of unknown outcome", inTopic, e.sent, e.unknown)
	}
}

// SIGINT and SIGTERM stop the program with status 0, and every click the
// emitter had acknowledged is in the topic and gets counted exactly once.
func TestSignalStopsCleanlyAndLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("signal test skipped with -short")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			p := clickstest.StartProcess(t, "-data", dir, "-listen", "127.0.0.1:0", "-broker-listen", "127.0.0.1:0", "-interval", "5ms", "-quiet")
			p.WaitForClicks("user-0", 4, 30*time.Second)
			p.StopWith(sig, 15*time.Second)
			e := emitterSummary(t, p)
			if e.failed != 0 || e.sent < 5 {
				t.Fatalf("emitter sent %d, failed %d; want at least 5 sent, none failed", e.sent, e.failed)
			}

			// Start again without the emitter: the topic holds exactly the
			// acknowledged clicks, and the counts add up to them.
			again := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
			inTopic := clickstest.RecordsPerKey(t, again.Brokers, string(clicks.Topic))
			total := 0
			for k, n := range inTopic {
				total += n
				again.WaitForBody("/"+k, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
			}
			if total != e.sent {
				t.Errorf("topic holds %d clicks, the emitter had acknowledged %d", total, e.sent)
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
	keys := clickstest.Keys(5)
	bad, elsewhere, original, previous, other := keys[0], keys[1], keys[2], keys[3], keys[4]
	away := func(key string) int32 {
		return (clicks.KeyPartition(key, clicks.DefaultPartitions) + 1) % clicks.DefaultPartitions
	}
	broker := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false", "-process=false", "-serve=false")
	writeTableValue(t, broker.Brokers, bad, -1, []byte("not json"))
	writeTableValue(t, broker.Brokers, elsewhere, away(elsewhere), []byte("\xff not json"))
	writeTableValue(t, broker.Brokers, original, -1, []byte(`{"Clicks":500}`))
	writeTableValue(t, broker.Brokers, previous, -1, []byte(`{"Clicks":7,"Offset":3,"TopicID":"an-older-topic"}`))
	broker.Stop()

	in := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	sendClicks(t, in.Brokers, map[string]int{bad: 2, elsewhere: 3, original: 1, previous: 1, other: 4})
	w := writers{t: t, brokers: in.Brokers}
	for _, k := range []string{bad, original, previous} {
		w.franzSend([]string{k}, away(k))
	}
	in.WaitForBody("/"+elsewhere, `{"Clicks":3}`, 30*time.Second)
	in.WaitForBody("/"+original, `{"Clicks":502}`, 30*time.Second)
	in.WaitForBody("/"+previous, `{"Clicks":9}`, 30*time.Second)
	in.WaitForBody("/"+other, `{"Clicks":4}`, 30*time.Second)
	in.WaitForMetric(30*time.Second, "the 3 clicks of the unreadable value skipped", func(got float64) bool { return got == 3 },
		"clicks_skipped_total", "reason", "unreadable_value")
	if status, body, err := in.Get("/" + bad); err != nil || status != 500 {
		t.Errorf("GET /%s: %d %s (%v), want 500", bad, status, body, err)
	}
	if n := strings.Count(in.Log(), "table value cannot be read skipped"); n != 1 {
		t.Errorf("%d log lines for the 3 skipped clicks, want 1 (once per interval)\nstderr:\n%s", n, in.Log())
	}
	select {
	case <-in.Done():
		t.Fatalf("the program stopped: %v\nstderr:\n%s", in.Err(), in.Log())
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
