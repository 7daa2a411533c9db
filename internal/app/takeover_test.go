package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clicks/internal/broker"
	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/kafka"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
)

// originalUser and originalCodec are the table value of goka's
// examples/2-clicks, as it writes it: {"Clicks":N}.
type originalUser struct{ Clicks int }

type originalCodec struct{}

func (originalCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }
func (originalCodec) Decode(data []byte) (any, error) {
	var u originalUser
	if err := json.Unmarshal(data, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// runOriginal runs goka's examples/2-clicks against brokers as its
// main.go does (topic user-click, group mini-group, goka's defaults): its
// processor counts, its emitter sends clicks[user] clicks for each user.
// It returns once the processor has counted all of them and stopped.
func runOriginal(t *testing.T, brokers []string, clicksOf map[string]int) {
	t.Helper()
	g := goka.DefineGroup(clicks.Group,
		goka.Input(originalTopic, new(codec.String), func(ctx goka.Context, _ any) {
			u := new(originalUser)
			if v := ctx.Value(); v != nil {
				u = v.(*originalUser)
			}
			u.Clicks++
			ctx.SetValue(u)
		}),
		goka.Persist(originalCodec{}),
	)
	p, err := goka.NewProcessor(brokers, g, goka.WithStorageBuilder(storage.DefaultBuilder(t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// goka's processor starts at the newest offset: only clicks sent once
	// it runs are counted.
	ready, cancelReady := context.WithTimeout(ctx, 30*time.Second)
	defer cancelReady()
	if err := p.WaitForReadyContext(ready); err != nil {
		t.Fatalf("the original's processor did not become ready: %v", err)
	}
	emitOriginal(t, brokers, clicksOf)
	clickstest.WaitFor(t, 30*time.Second, fmt.Sprintf("the original to count %v", clicksOf), func() (bool, string) {
		for user, n := range clicksOf {
			v, err := p.Get(user)
			if err != nil {
				t.Fatal(err)
			}
			if u, _ := v.(*originalUser); u == nil || u.Clicks != n {
				return false, fmt.Sprintf("%v for %s, want %d", v, user, n)
			}
		}
		return true, ""
	})
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("the original's processor: %v", err)
	}
}

// emitOriginal sends clicksOf[user] clicks for each user to user-click
// with goka's emitter, as the original's does, and fails the test unless
// the broker took every one.
func emitOriginal(t *testing.T, brokers []string, clicksOf map[string]int) {
	t.Helper()
	em, err := goka.NewEmitter(brokers, originalTopic, new(codec.String))
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Pointer[error]
	for user, n := range clicksOf {
		for range n {
			// Not EmitSync: it waits for goka's flush interval, 100 ms a click.
			promise, err := em.Emit(user, time.Now().String())
			if err != nil {
				t.Fatal(err)
			}
			promise.Then(func(err error) {
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			})
		}
	}
	if err := em.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := failed.Load(); err != nil {
		t.Fatalf("a click of the original's emitter was not taken: %v", *err)
	}
}

// topicPartitions lists the topics of the cluster with their partitions.
func topicPartitions(t *testing.T, brokers []string) map[string]int32 {
	t.Helper()
	_, topics := listTopics(t, brokers)
	n := map[string]int32{}
	for name, d := range topics {
		n[name] = d.NumPartitions
	}
	return n
}

// A cluster where goka's own 2-clicks ran first (its topics made with 8
// partitions, its table holding {"Clicks":N} written through goka with its
// codec): a start that asks for other partitions fails, names the value to
// pass, and creates nothing; clicks with its defaults creates its topics
// with the table's partitions, serves the original's counts, and says that
// the original's click topic is not read; with -topic user-click it counts
// on from the original's counts: every user's count is the original's and
// the clicks since.
//
// On the real cluster of KAFKA_BROKERS too, which it takes as new: it
// deletes clicks' topics and group before and after.
func TestTakeOverFromTheOriginal(t *testing.T) {
	t.Parallel()
	var brokers []string
	replication := int16(1)
	if k := kafkaBrokers(t); k != "" {
		brokers, replication = strings.Split(k, ","), int16(min(len(strings.Split(k, ",")), 3))
		ours := []string{originalTopic, string(clicks.Topic), string(clicks.Table), string(clicks.Loop)}
		resetRealCluster(t, brokers, ours...)
		// Last, after the instances below have stopped: the tests after
		// this one find the cluster as new again.
		t.Cleanup(func() { resetRealCluster(t, brokers, ours...) })
	} else {
		b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Dir: t.TempDir(), Table: string(clicks.Table), CompactInterval: time.Minute},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		brokers = b.ListenAddrs()
	}
	addr := strings.Join(brokers, ",")

	// The original's topics, with 8 partitions, as a cluster whose default
	// is 8 gives them to goka's topic manager.
	admin, err := sarama.NewClusterAdmin(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	compact := "compact"
	for name, d := range map[string]*sarama.TopicDetail{
		originalTopic:        {NumPartitions: 8, ReplicationFactor: replication},
		string(clicks.Table): {NumPartitions: 8, ReplicationFactor: replication, ConfigEntries: map[string]*string{"cleanup.policy": &compact}},
	} {
		if err := admin.CreateTopic(name, d, false); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close()
	// Known to every broker before the original's goka asks any of them.
	client, err := sarama.NewClient(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := kafka.WaitForTopics(client, originalTopic, string(clicks.Table)); err != nil {
		t.Fatal(err)
	}
	client.Close()
	original := map[string]int{}
	for i := range 10 {
		original[fmt.Sprintf("user-%d", i)] = 40 + i
	}
	runOriginal(t, brokers, original)
	before := topicPartitions(t, brokers)

	// -partitions 10 against the original's 8: refused, nothing created.
	stderr := clickstest.NewBuffer()
	err = Run(context.Background(), []string{"-data", t.TempDir(), "-listen", "127.0.0.1:0", "-brokers", addr, "-emit=false", "-partitions", "10"},
		func(string) string { return "" }, io.Discard, stderr)
	if err == nil || !strings.Contains(err.Error(), "pass -partitions 8") || !strings.Contains(err.Error(), string(clicks.Table)) {
		t.Fatalf("start with -partitions 10: %v, want an error naming %s and -partitions 8\n%s", err, clicks.Table, stderr)
	}
	if after := topicPartitions(t, brokers); !maps.Equal(after, before) {
		t.Fatalf("the failed start changed the topics: %v, before %v", after, before)
	}

	// The defaults: the new topics follow the table; the counts are the
	// original's; the original's topic is named as not read.
	dir := t.TempDir()
	in := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-brokers", addr, "-emit=false")
	for user, n := range original {
		in.WaitForBody("/"+user, fmt.Sprintf(`{"Clicks":%d}`, n), 30*time.Second)
	}
	topics := topicPartitions(t, brokers)
	for _, name := range []string{string(clicks.Topic), string(clicks.Loop)} {
		if topics[name] != 8 {
			t.Errorf("%s created with %d partitions, want the table's 8", name, topics[name])
		}
	}
	if !strings.Contains(in.Log(), "-topic user-click") {
		t.Errorf("no word that user-click is not read:\n%s", in.Log())
	}
	in.Stop()

	// The original's emitter goes on writing to user-click; clicks with
	// -topic user-click counts those clicks on top of the original's.
	since := map[string]int{"user-0": 5, "user-7": 2}
	emitOriginal(t, brokers, since)
	in = clickstest.StartInProcess(t, Run, nil, "-data", dir, "-brokers", addr, "-emit=false", "-topic", originalTopic)
	for _, user := range slices.Sorted(maps.Keys(original)) {
		in.WaitForBody("/"+user, fmt.Sprintf(`{"Clicks":%d}`, original[user]+since[user]), 30*time.Second)
	}
	if strings.Contains(in.Log(), "-topic user-click") {
		t.Errorf("warned of user-click while reading it:\n%s", in.Log())
	}
}

// A second instance on a -data another holds is refused before anything
// opens, naming the directory and the process that holds it.
func TestSecondInstanceOnOneDataDirIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	stderr := clickstest.NewBuffer()
	start := time.Now()
	err := Run(context.Background(), []string{"-data", dir, "-listen", "127.0.0.1:0", "-broker-listen", "127.0.0.1:0"},
		func(string) string { return "" }, io.Discard, stderr)
	if !errors.Is(err, errDataInUse) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) {
		t.Fatalf("second instance on %s: %v, want it refused naming the directory and process %d", dir, err, os.Getpid())
	}
	if ExitCode(err, io.Discard) != 1 {
		t.Errorf("exit code %d, want 1", ExitCode(err, io.Discard))
	}
	if stderr.String() != "" {
		t.Errorf("the refused instance started something (%s):\n%s", time.Since(start), stderr)
	}
}
