package repair_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/kafka"
	"clicks/internal/repair"

	"github.com/IBM/sarama"
)

// What the end-to-end tests set up: the program run on data of its own,
// clicks written, a log damaged while it is stopped.

// home is the partition of user-0, the user the tests write clicks of,
// in every topic: partition p of each holds (the clicks, counts or
// forwards of) the users of table partition p. away is another, where
// user-0's clicks are forwarded from.
var (
	home = clicks.KeyPartition("user-0", clicks.DefaultPartitions)
	away = (home + 1) % clicks.DefaultPartitions
)

// env is where a test runs the program: a directory for its data, and an
// address for the embedded broker that stays the same across restarts,
// so that the clients and instances started before find it again. The
// programs it starts emit nothing, but for killUnderLoad's: the tests
// write the clicks.
type env struct {
	t    *testing.T
	dir  string
	addr string
	// brokerData is the embedded broker's -data: dir, where it runs in
	// the whole program, or dir/b, where it runs in a process of its own.
	brokerData string
}

// newEnv is an env for the whole program, the embedded broker in it
// (start); startBroker runs the broker alone on the same data.
func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	return &env{t: t, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", clickstest.FreePort(t)), brokerData: dir}
}

// newApartEnv is an env whose embedded broker runs in a process of its
// own (startBroker), the instances beside it (startInstance).
func newApartEnv(t *testing.T) *env {
	e := newEnv(t)
	e.brokerData = filepath.Join(e.dir, "b")
	return e
}

// brokers is the embedded broker's address, as clients take it.
func (e *env) brokers() []string { return []string{e.addr} }

// wholeArgs are the arguments of the whole program on e, with its
// emitter.
func (e *env) wholeArgs() []string {
	return []string{"-data", e.dir, "-broker-listen", e.addr, "-listen", "127.0.0.1:0", "-quiet"}
}

// start runs the whole program on e, with extra arguments, and waits
// until its broker serves.
func (e *env) start(extra ...string) *clickstest.Process {
	e.t.Helper()
	p := clickstest.StartProcess(e.t, slices.Concat(e.wholeArgs(), []string{"-emit=false"}, extra)...)
	p.WaitForBrokers()
	return p
}

// startBroker runs the embedded broker alone, and waits until it serves.
func (e *env) startBroker() *clickstest.Process {
	e.t.Helper()
	b := clickstest.StartProcess(e.t, "-data", e.brokerData, "-broker-listen", e.addr, "-emit=false", "-process=false", "-serve=false")
	b.WaitForBrokers()
	return b
}

// startInstance runs an instance of the processor and the view against
// the broker, with its data (its local tables) in dir/name and extra
// arguments.
func (e *env) startInstance(name string, extra ...string) *clickstest.Process {
	e.t.Helper()
	args := []string{"-brokers", e.addr, "-data", filepath.Join(e.dir, name), "-listen", "127.0.0.1:0", "-emit=false", "-quiet"}
	return clickstest.StartProcess(e.t, append(args, extra...)...)
}

// killUnderLoad runs the whole program on e, emitting a click a
// millisecond while, if foreign, another client writes clicks into
// partitions of its own choosing, and kills it with SIGKILL once it has
// counted 3,000 clicks.
func (e *env) killUnderLoad(foreign bool) {
	e.t.Helper()
	p := clickstest.StartProcess(e.t, append(e.wholeArgs(), "-interval", "1ms")...)
	p.WaitForBrokers()
	stopWriter := func() {}
	if foreign {
		stopWriter = clickstest.StartForeignWriter(e.t, e.brokers())
	}
	p.WaitForSummary(time.Minute, "3000 clicks", func(st clickstest.Summary) bool { return st.Total >= 3000 })
	stopWriter()
	p.Kill()
}

// writeClicks writes n clicks of user-0 to partition of user-clicks, a
// request each.
func (e *env) writeClicks(partition int32, n int) {
	e.t.Helper()
	produceTo(e.t, e.addr, string(clicks.Topic), partition, "user-0", n, func(i int) string { return fmt.Sprintf("click %d", i) })
}

// kafka is the program's Kafka configuration for the broker.
func (e *env) kafka() *kafka.Config {
	return kafka.New(e.brokers(), 1, clicks.DefaultPartitions, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// client is a client of the broker, closed at the test's end.
func (e *env) client() sarama.Client {
	e.t.Helper()
	client, err := sarama.NewClient(e.brokers(), e.kafka().Sarama())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { client.Close() })
	return client
}

// forwardedNotCounted plays the processor at a crash, with only the
// embedded broker running: n more clicks of user-0 in partition away of
// user-clicks (offsets from on), their forwards in partition home of the
// loop topic, not counted, and the group's offset of away committed past
// them. It returns a client of the broker, closed at the test's end.
func (e *env) forwardedNotCounted(from, n int) sarama.Client {
	e.t.Helper()
	t := e.t
	produceTo(t, e.addr, string(clicks.Topic), away, "user-0", n, func(i int) string { return fmt.Sprintf("click %d", from+i) })
	id, err := e.kafka().TopicID(string(clicks.Topic))
	if err != nil {
		t.Fatal(err)
	}
	produceTo(t, e.addr, string(clicks.Loop), home, "user-0", n, func(i int) string {
		return fmt.Sprintf(`{"Partition":%d,"Offset":%d,"TopicID":%q}`, away, from+i, id)
	})
	client := e.client()
	if err := repair.Rewind(client, string(clicks.Group), string(clicks.Topic), away, int64(from+n)); err != nil {
		t.Fatal(err)
	}
	return client
}

// holdGroup has another member join the processor group and hold its
// partitions, reading and writing nothing (as another instance's
// processor, that changes nothing meanwhile), and waits until the group
// is stable with it. release makes it leave.
func (e *env) holdGroup() (release func()) {
	e.t.Helper()
	t := e.t
	group, err := sarama.NewConsumerGroup(e.brokers(), string(clicks.Group), e.kafka().Sarama())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() { consumed <- group.Consume(ctx, []string{string(clicks.Topic)}, holdPartitions{}) }()
	client := e.client()
	clickstest.WaitFor(t, time.Minute, "the other member to join the group", func() (bool, string) {
		members, state, err := repair.GroupMembers(client, string(clicks.Group))
		return err == nil && members > 0 && state == "Stable", fmt.Sprintf("%d members, %s, %v", members, state, err)
	})
	return func() {
		t.Helper()
		cancel()
		if err := <-consumed; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("other member: %v", err)
		}
		if err := group.Close(); err != nil {
			t.Errorf("close the other member: %v", err)
		}
	}
}

// holdPartitions is a consumer group member that holds its partitions
// and reads nothing.
type holdPartitions struct{}

func (holdPartitions) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (holdPartitions) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (holdPartitions) ConsumeClaim(s sarama.ConsumerGroupSession, _ sarama.ConsumerGroupClaim) error {
	<-s.Context().Done()
	return nil
}

// produceTo writes n records of key to partition of topic, the value of
// the i-th from value(i).
func produceTo(t *testing.T, addr, topic string, partition int32, key string, n int, value func(i int) string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range n {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: partition,
			Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value(i))}); err != nil {
			t.Fatalf("write to %s/%d: %v", topic, partition, err)
		}
	}
}

// damage damages the last segment file of partition p of topic in the
// embedded broker's log, as a disk or a careless hand might while the
// program is stopped: cut to nothing (cut 0) or by cut bytes at its end.
func (e *env) damage(topic string, p int32, cut int64) {
	e.t.Helper()
	t := e.t
	segs, _ := e.segments(topic, p)
	if len(segs) == 0 {
		t.Fatalf("%s/%d has no segment file", topic, p)
	}
	last := segs[len(segs)-1]
	info, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(0)
	if cut > 0 {
		size = info.Size() - cut
		if size < 0 {
			t.Fatalf("%s holds %d bytes, fewer than the %d to cut", last, info.Size(), cut)
		}
	}
	if err := os.Truncate(last, size); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes, now %d", last, info.Size(), size)
}

// segments returns the segment files of partition p of topic in the
// embedded broker's log, in the order of the offsets they begin at, and
// those offsets.
func (e *env) segments(topic string, p int32) (paths []string, bases []int64) {
	e.t.Helper()
	t := e.t
	paths, err := filepath.Glob(filepath.Join(e.brokerData, "broker", "partitions", fmt.Sprintf("%s-%d", topic, p), "*.dat"))
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]int64{}
	for _, path := range paths {
		n, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(path), ".dat"), 10, 64)
		if err != nil {
			t.Fatalf("segment %s: %v", path, err)
		}
		base[path] = n
	}
	slices.SortFunc(paths, func(a, b string) int { return cmp.Compare(base[a], base[b]) })
	for _, path := range paths {
		bases = append(bases, base[path])
	}
	return paths, bases
}

// emitterUsers are the users of the emitter's default -users 10, those
// clickstest.WriteOneClickBatches writes clicks of.
func emitterUsers() []string {
	var keys []string
	for i := range 10 {
		keys = append(keys, fmt.Sprintf("user-%d", i))
	}
	return keys
}
