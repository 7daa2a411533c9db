package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// gokaPartition is the partition goka's emitter and view use for key:
// other clients must put a click there for the view to find its count.
func gokaPartition(t *testing.T, key string) int32 {
	t.Helper()
	p, err := sarama.NewCustomHashPartitioner(goka.DefaultHasher())(string(topic)).
		Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, defaultPartitions)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// franz-go, a client unrelated to sarama, produces to and consumes from the
// embedded broker.
func TestFranzGoTalksToEmbeddedBroker(t *testing.T) {
	in := startClicks(t, nil, "-data", t.TempDir(), "-users", "1", "-interval", "20ms")
	key := testKeys(1)[0]

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(in.brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeTopics(string(topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rec := &kgo.Record{Topic: string(topic), Partition: gokaPartition(t, key), Key: []byte(key), Value: []byte(time.Now().String())}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("franz-go produce: %v", err)
	}
	in.waitForBody("/"+key, `{"Clicks":1}`, 30*time.Second)

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
	kcat := needKcat(t)
	in := startClicks(t, nil, "-data", t.TempDir(), "-emit=false")
	broker := in.brokers[0]
	key := testKeys(1)[0]

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

	if meta := kcatRun("", "-L", "-t", string(topic)); !strings.Contains(meta, `topic "user-clicks" with 10 partitions`) {
		t.Errorf("kcat -L does not show user-clicks with 10 partitions:\n%s", meta)
	}
	kcatRun("a click from kcat\n", "-P", "-t", string(topic), "-p", fmt.Sprint(gokaPartition(t, key)), "-k", key)
	in.waitForBody("/"+key, `{"Clicks":1}`, 30*time.Second)

	got := kcatRun("", "-C", "-t", string(table), "-o", "beginning", "-e", "-q", "-f", "%k=%s\n")
	if want := key + `={"Clicks":1,"Offset":`; !strings.Contains(got, want) {
		t.Errorf("kcat read from %s:\n%s\nwant a line that starts %s", table, got, want)
	}
}

// Clicks that other clients may write: a null key and an empty key are
// skipped, a 1 MB value and a key that is not UTF-8 are counted; the
// processor keeps running through all of them.
func TestKcatOddClicks(t *testing.T) {
	kcat := needKcat(t)
	in := startClicks(t, nil, "-data", t.TempDir(), "-emit=false")
	produce := func(value string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", in.brokers[0], "-P", "-t", string(topic), "-X", "message.max.bytes=2000000"}, args...)...)
		cmd.Stdin = strings.NewReader(value)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, out)
		}
	}
	keys := testKeys(2)
	notUTF8 := keys[0] + "\xff\xfe"
	big := keys[1]
	sentinel := testKeys(1)[0]
	p := gokaPartition(t, sentinel)

	produce("click with a null key\n", "-p", fmt.Sprint(p))
	produce(":click with an empty key\n", "-p", fmt.Sprint(p), "-K", ":")
	produce("click\n", "-p", fmt.Sprint(gokaPartition(t, notUTF8)), "-k", notUTF8)
	produce(strings.Repeat("v", 1_000_000)+"\n", "-p", fmt.Sprint(gokaPartition(t, big)), "-k", big)
	// Behind the keyless clicks in their partition: once it is counted,
	// they have been processed.
	produce("click\n", "-p", fmt.Sprint(p), "-k", sentinel)

	in.waitForBody("/"+sentinel, `{"Clicks":1}`, 30*time.Second)
	in.waitForBody("/"+url.PathEscape(notUTF8), `{"Clicks":1}`, 30*time.Second)
	in.waitForBody("/"+big, `{"Clicks":1}`, 30*time.Second)
	if n := strings.Count(in.stderr.String(), "click without a user key skipped"); n != 2 {
		t.Errorf("%d keyless clicks logged as skipped, want 2\nstderr:\n%s", n, in.stderr)
	}
	select {
	case err := <-in.done:
		in.stopped = true
		t.Fatalf("the program stopped: %v", err)
	default:
	}
}

// needKcat returns kcat's path. Without kcat the test skips, except under
// CI=true, where .ci/run should have installed it.
func needKcat(t *testing.T) string {
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
