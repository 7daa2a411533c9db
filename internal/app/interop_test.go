package app

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/metrics/metricstest"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// gokaPartition is the partition goka's emitter and view use for key:
// other clients must put a click there for the view to find its count.
func gokaPartition(t *testing.T, key string) int32 {
	t.Helper()
	p, err := sarama.NewCustomHashPartitioner(goka.DefaultHasher())(string(clicks.Topic)).
		Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, clicks.DefaultPartitions)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// franz-go, a client unrelated to sarama, produces to and consumes from the
// embedded broker.
func TestFranzGoTalksToEmbeddedBroker(t *testing.T) {
	t.Parallel()
	in := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-users", "1", "-interval", "20ms")
	key := clickstest.Keys(1)[0]

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(in.Brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeTopics(string(clicks.Topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rec := &kgo.Record{Topic: string(clicks.Topic), Partition: gokaPartition(t, key), Key: []byte(key), Value: []byte(time.Now().String())}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("franz-go produce: %v", err)
	}
	in.WaitForBody("/"+key, `{"Clicks":1}`, 30*time.Second)

	// It reads the clicks of the program's own emitter.
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("franz-go saw no click of user-0: %v", err)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Fatalf("franz-go fetch: %v", errs[0].Err)
		}
		found := false
		fetches.EachRecord(func(r *kgo.Record) { found = found || string(r.Key) == "user-0" })
		if found {
			return
		}
	}
}

// kcat (librdkafka) lists, produces to and consumes from the embedded
// broker.
func TestKcatTalksToEmbeddedBroker(t *testing.T) {
	t.Parallel()
	kcat := needKcat(t)
	in := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-emit=false")
	broker := in.Brokers[0]
	key := clickstest.Keys(1)[0]

	kcatRun := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", broker}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	if meta := kcatRun("", "-L", "-t", string(clicks.Topic)); !strings.Contains(meta, `topic "user-clicks" with 10 partitions`) {
		t.Errorf("kcat -L does not show user-clicks with 10 partitions:\n%s", meta)
	}
	kcatRun("a click from kcat\n", "-P", "-t", string(clicks.Topic), "-p", fmt.Sprint(gokaPartition(t, key)), "-k", key)
	in.WaitForBody("/"+key, `{"Clicks":1}`, 30*time.Second)

	got := kcatRun("", "-C", "-t", string(clicks.Table), "-o", "beginning", "-e", "-q", "-f", "%k=%s\n")
	if want := key + `={"Clicks":1,"Offset":`; !strings.Contains(got, want) {
		t.Errorf("kcat read from %s:\n%s\nwant a line that starts %s", clicks.Table, got, want)
	}
}

// Clicks that other clients may write: a null key and an empty key are
// skipped, a 1 MB value, a null value and a key that is not UTF-8 are
// counted; the processor keeps running through all of them.
func TestKcatOddClicks(t *testing.T) {
	t.Parallel()
	kcat := needKcat(t)
	in := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-emit=false")
	produce := func(value string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", in.Brokers[0], "-P", "-t", string(clicks.Topic), "-X", "message.max.bytes=2000000"}, args...)...)
		cmd.Stdin = strings.NewReader(value)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, out)
		}
	}
	keys := clickstest.Keys(3)
	notUTF8 := keys[0] + "\xff\xfe"
	big := keys[1]
	nullValue := keys[2]
	sentinel := clickstest.Keys(1)[0]
	p := gokaPartition(t, sentinel)

	produce("click with a null key\n", "-p", fmt.Sprint(p))
	produce(":click with an empty key\n", "-p", fmt.Sprint(p), "-K", ":")
	produce("click\n", "-p", fmt.Sprint(gokaPartition(t, notUTF8)), "-k", notUTF8)
	produce(strings.Repeat("v", 1_000_000)+"\n", "-p", fmt.Sprint(gokaPartition(t, big)), "-k", big)
	produce(nullValue+":\n", "-p", fmt.Sprint(gokaPartition(t, nullValue)), "-K", ":", "-Z") // -Z: the empty value as null
	// Behind the keyless clicks in their partition: once it is counted,
	// they have been processed.
	produce("click\n", "-p", fmt.Sprint(p), "-k", sentinel)

	in.WaitForBody("/"+sentinel, `{"Clicks":1}`, 30*time.Second)
	in.WaitForBody("/"+url.PathEscape(notUTF8), `{"Clicks":1}`, 30*time.Second)
	in.WaitForBody("/"+big, `{"Clicks":1}`, 30*time.Second)
	in.WaitForBody("/"+nullValue, `{"Clicks":1}`, 30*time.Second)
	if n, _ := metricstest.Value(metricstest.Scrape(t, in.Get), "clicks_skipped_total", "reason", "no_key"); n != 2 {
		t.Errorf("clicks_skipped_total{reason=\"no_key\"} = %v, want 2", n)
	}
	// Logged once per interval, not once per click.
	if n := strings.Count(in.Log(), "click without a user key skipped"); n != 1 {
		t.Errorf("%d log lines for the 2 keyless clicks, want 1\nstderr:\n%s", n, in.Log())
	}
	select {
	case <-in.Done():
		t.Fatalf("the program stopped: %v", in.Err())
	default:
	}
}

// needKcat returns kcat's path. Without kcat the test skips, except under
// CI=true, where .ci/run should have installed it.
func needKcat(t testing.TB) string {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat is not installed; .ci/run installs it with apt-get")
		}
		t.Skip("kcat is not installed (apt-get install kcat)")
	}
	return kcat
}

// writers are the ways other Kafka clients put clicks into user-clicks:
// each sends one click per key.
type writers struct {
	t       *testing.T
	brokers []string
	kcat    string
}

// kcat sends with librdkafka's default partitioner (crc32 of the key,
// "consistent_random") or with the extra -X/-p arguments given.
func (w writers) kcatSend(keys []string, args ...string) {
	w.t.Helper()
	var lines strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&lines, "%s:a click from kcat\n", k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.kcat, append([]string{"-b", strings.Join(w.brokers, ","), "-P", "-t", string(clicks.Topic), "-K:"}, args...)...)
	cmd.Stdin = strings.NewReader(lines.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("kcat %v: %v\n%s", args, err, out)
	}
}

// franz sends with franz-go's default partitioner (murmur2 of the key, as
// the Java client), or into partition p if p >= 0.
func (w writers) franzSend(keys []string, p int32) {
	w.t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(w.brokers...)}
	if p >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		w.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, len(keys))
	for i, k := range keys {
		recs[i] = &kgo.Record{Topic: string(clicks.Topic), Partition: p, Key: []byte(k), Value: []byte("a click from franz-go")}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		w.t.Fatalf("franz-go produce: %v", err)
	}
}

// sarama sends with sarama's default partitioner (FNV-1a, as goka's).
func (w writers) saramaSend(keys []string) {
	w.t.Helper()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(w.brokers, cfg)
	if err != nil {
		w.t.Fatalf("sarama producer: %v", err)
	}
	defer p.Close()
	for _, k := range keys {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(clicks.Topic), Key: sarama.StringEncoder(k), Value: sarama.StringEncoder("a click from sarama")}); err != nil {
			w.t.Fatalf("sarama send: %v", err)
		}
	}
}

// all sends keys once through every writer: kcat with its default and
// with Java's partitioner, franz-go, sarama, and each key into every
// partition by hand.
func (w writers) all(keys []string) {
	w.t.Helper()
	w.kcatSend(keys)
	w.kcatSend(keys, "-X", "topic.partitioner=murmur2_random")
	w.franzSend(keys, -1)
	w.saramaSend(keys)
	for p := range int32(clicks.DefaultPartitions) {
		w.kcatSend(keys[:1], "-p", fmt.Sprint(p))
		w.franzSend(keys[len(keys)-1:], p)
	}
}

// Clicks from any client in any partition, mixed with the emitter's, for
// the emitter's users and new ones, are each counted once; and again by a
// processor and view that rebuild their tables from the changelog alone.
// On the real cluster of KAFKA_BROKERS too.
func TestClicksFromAnyClientCountedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("interoperability test skipped with -short")
	}
	w := writers{t: t, kcat: needKcat(t)}
	brokers := kafkaBrokers(t)
	if brokers == "" {
		broker := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-emit=false", "-process=false", "-serve=false")
		brokers = strings.Join(broker.Brokers, ",")
	}
	w.brokers = strings.Split(brokers, ",")
	emitter := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", brokers, "-process=false", "-serve=false", "-users", "5", "-interval", "2ms")
	app := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", brokers, "-emit=false")

	keys := append(clickstest.Keys(20), "user-0", "user-1", "user-2", "user-3", "user-4")
	w.all(keys)
	emitter.Stop()
	matchTopic(t, w.brokers, app)
	families := metricstest.Scrape(t, app.Get)
	if n, _ := metricstest.Value(families, "clicks_forwarded_total"); n == 0 {
		t.Error("clicks_forwarded_total is 0: no click was outside its partition, the test tested nothing")
	}
	app.Stop()

	// A view alone and a processor with its view, all with empty local
	// tables, rebuild them from the changelog; the processor counts on.
	view := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", brokers, "-emit=false", "-process=false")
	matchTopic(t, w.brokers, view)
	fresh := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", brokers, "-emit=false")
	w.all(append(clickstest.Keys(5), keys[:3]...))
	matchTopic(t, w.brokers, fresh, view)
}
