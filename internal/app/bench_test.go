package app

// Benchmarks of clicks against the limits of the same machine, measured
// in the same run: `make bench` runs them. Each reports its figures with
// b.ReportMetric, so benchstat can compare runs. They are end-to-end
// measurements that take seconds each; run them one at a time
// (-benchtime 1x).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clicks/internal/broker"
	"clicks/internal/cache"
	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/kafka"
	"clicks/internal/metrics"
	"clicks/internal/metrics/metricstest"
	"clicks/internal/web"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// benchEnv is a broker with the topics created (an embedded one, or the
// real cluster of KAFKA_BROKERS) and a temporary directory, for one
// benchmark.
type benchEnv struct {
	b      *testing.B
	dir    string
	broker *broker.Embedded
	k      *kafka.Config
	logger *slog.Logger

	// cacheBatches is the processor's -cache-batches: 2, the default, or
	// CLICKS_CACHE_BATCHES, to measure another (0: no record cache).
	cacheBatches int
}

// cacheBatchesToMeasure is CLICKS_CACHE_BATCHES, or 2, the default.
func cacheBatchesToMeasure(b *testing.B) int {
	s := os.Getenv("CLICKS_CACHE_BATCHES")
	if s == "" {
		return 2
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		b.Fatalf("CLICKS_CACHE_BATCHES=%q: want a number of at least 0", s)
	}
	return n
}

// topics are the topics of the program, as it creates them.
var topics = kafka.Topics{Stream: string(clicks.Topic), Table: string(clicks.Table), Loop: string(clicks.Loop)}

// newBenchEnv starts an embedded broker with the program's topics, for one
// benchmark. With KAFKA_BROKERS set, the benchmark runs on that real
// cluster instead,
// which it takes as new: clicks' topics and group are deleted first, and
// its topics get 3 replicas and min.insync.replicas=2, as clicks gives
// them there.
func newBenchEnv(b *testing.B, partitions int) *benchEnv {
	b.Helper()
	dir := b.TempDir()
	// Warnings and errors only: a log line per record would measure the
	// logger.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var (
		brk *broker.Embedded
		k   *kafka.Config
	)
	if real := kafkaBrokers(b); real != "" {
		brokers := strings.Split(real, ",")
		resetRealCluster(b, brokers, topics.Stream, topics.Table, topics.Loop, topics.Stream+"-forwarded")
		k = kafka.New(brokers, min(len(brokers), 3), partitions, logger)
		if k.Replication == 3 {
			k.MinInsync = 2
		}
	} else {
		var err error
		brk, err = broker.Start(broker.Config{
			Listen: "127.0.0.1:0", Count: 1, Dir: filepath.Join(dir, "broker"), Table: string(clicks.Table), CompactInterval: time.Hour,
		}, logger)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(brk.Close)
		k = kafka.New(brk.ListenAddrs(), 1, partitions, logger)
	}
	client, err := k.Connect(context.Background(), 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	if _, err := k.EnsureTopics(client, topics); err != nil {
		b.Fatal(err)
	}
	return &benchEnv{b: b, dir: dir, broker: brk, k: k, cacheBatches: cacheBatchesToMeasure(b), logger: logger}
}

// runPart runs a goka part until the benchmark ends and waits until it
// has recovered.
func (e *benchEnv) runPart(name string, run func(context.Context) error, recovered func() bool) (stop func()) {
	e.b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.b.Errorf("%s: %v", name, err)
			}
		})
	}
	e.b.Cleanup(stop)
	deadline := time.Now().Add(5 * time.Minute)
	for !recovered() {
		select {
		case err := <-done:
			e.b.Fatalf("%s stopped: %v", name, err)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.b.Fatalf("%s did not recover within 5 minutes", name)
		}
	}
	return stop
}

// startProcessor starts the click processor with its cache in dir.
func (e *benchEnv) startProcessor(dir string) (*goka.Processor, func()) {
	e.b.Helper()
	id, err := e.k.TopicID(string(clicks.Topic))
	if err != nil {
		e.b.Fatal(err)
	}
	c := clicks.NewCounter(nil, id, int32(e.k.Partitions), nil, e.logger)
	p, err := clicks.NewProcessor(e.k.Brokers, c, e.k.ProcessorOptions(cache.Builder(dir, cache.LargeMemtable), string(clicks.Table), e.cacheBatches)...)
	if err != nil {
		e.b.Fatal(err)
	}
	return p, e.runPart("processor", p.Run, p.Recovered)
}

// startView starts a view with its cache in dir, every update passing
// through update, and waits until it has recovered. The view's table
// caches are stored, for the summary to count.
func (e *benchEnv) startView(dir string, update goka.UpdateCallback) (*clicks.View, func()) {
	v, _, stop := e.startStoredView(dir, update)
	return v, stop
}

func (e *benchEnv) startStoredView(dir string, update goka.UpdateCallback) (*clicks.View, *cache.Tables, func()) {
	e.b.Helper()
	tables := cache.NewTables(dir, cache.LargeMemtable)
	v, err := clicks.NewView(e.k.Brokers, e.k.ViewOptions(tables.Builder(nil), update)...)
	if err != nil {
		e.b.Fatal(err)
	}
	return v, tables, e.runPart("view", v.Run, v.Recovered)
}

// startSummaryView starts a view that keeps a summary, which tells how
// many clicks the view shows.
func (e *benchEnv) startSummaryView(dir string) (*clicks.View, *web.Summary, func()) {
	e.b.Helper()
	s := web.NewSummary()
	v, tables, stop := e.startStoredView(dir, s.Update)
	if err := s.Scan(tables); err != nil {
		e.b.Fatal(err)
	}
	return v, s, stop
}

// waitForTotal waits until the view shows total clicks.
func waitForTotal(b *testing.B, s *web.Summary, total int64, within time.Duration) {
	b.Helper()
	deadline := time.Now().Add(within)
	for {
		got := s.Snapshot().Total
		if got == total {
			return
		}
		if got > total {
			b.Fatalf("the view shows %d clicks, more than the %d sent", got, total)
		}
		if time.Now().After(deadline) {
			b.Fatalf("the view shows %d clicks of %d after %v", got, total, within)
		}
		time.Sleep(time.Millisecond)
	}
}

// emitAsFastAsPossible sends n clicks for users user-0 … user-(users-1)
// in turn with the program's emitter, asynchronously, starting at user
// first, and waits for every acknowledgement.
func (e *benchEnv) emitAsFastAsPossible(n, users, first int) {
	e.b.Helper()
	em, err := clicks.NewEmitter(e.k.Brokers, clicks.Topic, e.k.EmitterOptions()...)
	if err != nil {
		e.b.Fatal(err)
	}
	var failed atomic.Int64
	value := time.Now().String()
	for i := range n {
		p, err := em.Emit(fmt.Sprintf("user-%d", (first+i)%users), value)
		if err != nil {
			e.b.Fatal(err)
		}
		p.Then(func(err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := em.Finish(); err != nil {
		e.b.Fatal(err)
	}
	if n := failed.Load(); n > 0 {
		e.b.Fatalf("%d clicks not sent", n)
	}
}

// createTopic creates name with the benchmark's partitions, unless it
// is there.
func (e *benchEnv) createTopic(name string) {
	e.b.Helper()
	admin, err := sarama.NewClusterAdmin(e.k.Brokers, e.k.Sarama())
	if err != nil {
		e.b.Fatal(err)
	}
	err = admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: int32(e.k.Partitions), ReplicationFactor: int16(e.k.Replication)}, false)
	if err := errors.Join(err, admin.Close()); err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		e.b.Fatalf("create %s: %v", name, err)
	}
}

// benchProducer is a plain sarama async producer configured as the
// program's, which counts the messages it failed to write.
type benchProducer struct {
	sarama.AsyncProducer
	wg       sync.WaitGroup
	failed   atomic.Int64
	firstErr atomic.Pointer[error]
}

func (e *benchEnv) newProducer() *benchProducer {
	e.b.Helper()
	return e.newProducerWith(e.k.Sarama())
}

func (e *benchEnv) newProducerWith(cfg *sarama.Config) *benchProducer {
	e.b.Helper()
	ap, err := sarama.NewAsyncProducer(e.k.Brokers, cfg)
	if err != nil {
		e.b.Fatal(err)
	}
	p := &benchProducer{AsyncProducer: ap}
	p.wg.Go(func() {
		for range p.Successes() {
		}
	})
	p.wg.Go(func() {
		for err := range p.Errors() {
			p.failed.Add(1)
			p.firstErr.CompareAndSwap(nil, &err.Err)
		}
	})
	return p
}

// close writes what is buffered, and fails the benchmark, named by what,
// if any message was not written.
func (p *benchProducer) close(b *testing.B, what string) {
	b.Helper()
	closeErr := p.Close()
	p.wg.Wait()
	if f := p.failed.Load(); f > 0 {
		b.Fatalf("%s: %d messages failed, the first with %v", what, f, *p.firstErr.Load())
	}
	if closeErr != nil {
		b.Fatalf("%s: %v", what, closeErr)
	}
}

// bareProduce writes n messages to name with a plain sarama async
// producer configured as the program's, and returns the rate.
func (e *benchEnv) bareProduce(name string, n, users int) float64 {
	e.b.Helper()
	e.createTopic(name)
	p := e.newProducer()
	value := sarama.StringEncoder(time.Now().String())
	start := time.Now()
	for i := range n {
		p.Input() <- &sarama.ProducerMessage{Topic: name, Key: sarama.StringEncoder(fmt.Sprintf("user-%d", i%users)), Value: value}
	}
	p.close(e.b, "bare producer")
	return float64(n) / time.Since(start).Seconds()
}

// joinSignal tells when a consumer group handler's first session began:
// the group has been joined and the partitions assigned, as they are for
// the processor when the benchmarks start its clock.
type joinSignal struct {
	once   sync.Once
	joined chan struct{}
	at     time.Time
}

func newJoinSignal() *joinSignal { return &joinSignal{joined: make(chan struct{})} }

func (j *joinSignal) Setup(sarama.ConsumerGroupSession) error {
	j.once.Do(func() { j.at = time.Now(); close(j.joined) })
	return nil
}
func (j *joinSignal) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// countingHandler is a consumer group handler that only counts.
type countingHandler struct {
	*joinSignal
	seen atomic.Int64
	want int64
	done chan struct{}
	once sync.Once
	at   time.Time // when it had seen want messages
}

func (h *countingHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for range c.Messages() {
		if h.seen.Add(1) == h.want {
			h.once.Do(func() { h.at = time.Now(); close(h.done) })
		}
	}
	return nil
}

// forwardingHandler is a consumer group handler that writes every
// message it reads to another clicks.Topic, as the processor writes a changelog
// record for every click, but keeps no state.
type forwardingHandler struct {
	*joinSignal
	to string
	p  sarama.AsyncProducer
}

func (h *forwardingHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.p.Input() <- &sarama.ProducerMessage{Topic: h.to, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value)}
		s.MarkMessage(m, "")
	}
	return nil
}

// consumeInGroup consumes topic from the oldest offset in a new group of
// plain sarama consumers configured as the program's, with h, until the
// benchmark ends (or stop is called), and waits until the group is joined.
func (e *benchEnv) consumeInGroup(topic string, h interface {
	sarama.ConsumerGroupHandler
	Joined() <-chan struct{}
}) (stop func()) {
	e.b.Helper()
	g, err := sarama.NewConsumerGroup(e.k.Brokers, fmt.Sprintf("bare-%d", rand.Int()), e.k.Sarama())
	if err != nil {
		e.b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				e.b.Errorf("bare consumer of %s: %v", clicks.Topic, err)
				return
			}
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if err := g.Close(); err != nil {
				e.b.Errorf("close bare consumer of %s: %v", clicks.Topic, err)
			}
		})
	}
	e.b.Cleanup(stop)
	select {
	case <-h.Joined():
	case <-time.After(time.Minute):
		e.b.Fatalf("bare consumer of %s did not join its group within a minute", topic)
	}
	return stop
}

func (j *joinSignal) Joined() <-chan struct{} { return j.joined }

// waitForCount waits until h has seen all it wants.
func (h *countingHandler) wait(b *testing.B, within time.Duration) {
	b.Helper()
	select {
	case <-h.done:
	case <-time.After(within):
		b.Fatalf("bare consumer read %d of %d in %v", h.seen.Load(), h.want, within)
	}
}

// bareGoka reads the n clicks in user-clicks with a goka processor whose
// callback does nothing and that has no table: the ceiling of any goka
// program on this broker. The rate is from the processor's first click.
func (e *benchEnv) bareGoka(n int) float64 {
	e.b.Helper()
	var (
		seen  atomic.Int64
		first atomic.Int64 // unix nanoseconds of the first click
		done  = make(chan struct{})
	)
	graph := goka.DefineGroup(goka.Group(fmt.Sprintf("bare-goka-%d", rand.Int())),
		goka.Input(clicks.Topic, new(codec.String), func(goka.Context, any) {
			first.CompareAndSwap(0, time.Now().UnixNano())
			if seen.Add(1) == int64(n) {
				close(done)
			}
		}),
	)
	p, err := goka.NewProcessor(e.k.Brokers, graph, bareGokaOptions(e.k)...)
	if err != nil {
		e.b.Fatal(err)
	}
	stop := e.runPart("bare goka processor", p.Run, p.Recovered)
	defer stop()
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		e.b.Fatalf("bare goka processor read %d of %d clicks in 10 minutes", seen.Load(), n)
	}
	return float64(n) / time.Since(time.Unix(0, first.Load())).Seconds()
}

// bareGokaOptions are a bare goka processor's options: goka's own
// producer, consumers and topic manager, with clicks' sarama settings.
func bareGokaOptions(k *kafka.Config) []goka.ProcessorOption {
	return []goka.ProcessorOption{
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(k.Sarama())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(k.Sarama())),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(k.Sarama())),
		goka.WithTopicManagerBuilder(k.TopicManagerBuilder()),
	}
}

// bareConsume reads n messages of name from the oldest with a plain
// sarama consumer group configured as the program's, and returns the rate
// from when the group was joined.
func (e *benchEnv) bareConsume(name string, n int) float64 {
	e.b.Helper()
	h := &countingHandler{joinSignal: newJoinSignal(), want: int64(n), done: make(chan struct{})}
	stop := e.consumeInGroup(name, h)
	defer stop()
	h.wait(e.b, 5*time.Minute)
	return float64(n) / h.at.Sub(h.joinSignal.at).Seconds()
}

// barePipeline does the Kafka work of the processor and the view without
// their state, with plain sarama clients configured as the program's: a
// consumer group reads n messages of name and writes each to a second
// clicks.Topic, and another group reads them from there. It returns the rate at
// which they arrive at the end, from when the first group was joined. No
// processor that writes a changelog record per click can count faster on
// the same broker.
func (e *benchEnv) barePipeline(name string, n int) float64 {
	e.b.Helper()
	out := name + "-forwarded"
	e.createTopic(out)
	p := e.newProducer()
	counter := &countingHandler{joinSignal: newJoinSignal(), want: int64(n), done: make(chan struct{})}
	stopCounter := e.consumeInGroup(out, counter)
	forwarder := &forwardingHandler{joinSignal: newJoinSignal(), to: out, p: p}
	stopForwarder := e.consumeInGroup(name, forwarder)
	counter.wait(e.b, 5*time.Minute)
	stopForwarder()
	stopCounter()
	p.close(e.b, "bare pipeline")
	return float64(n) / counter.at.Sub(forwarder.joinSignal.at).Seconds()
}

// BenchmarkThroughput: clicks counted per second, in the same run on the
// same broker as a bare sarama producer that only writes and a bare
// consumer group that only reads:
//
//   - bare-produce/s: the bare producer writes the clicks to user-clicks;
//   - bare-consume/s: the bare consumer group reads them all;
//   - bare-pipeline/s: a bare consumer group writes each of them to a
//     second topic and a bare consumer reads them there: the Kafka work
//     of the processor and the view, without their state (barePipeline);
//   - bare-goka/s: a goka processor whose callback does nothing and that
//     has no table reads them all: the ceiling of any goka program here;
//   - count/s: the processor counts those same clicks, from when it is
//     running until the view shows every one: the ratio to the consumer
//     compares like with like;
//   - clicks/s: end to end, the program's emitter sends as many again as
//     fast as it can while they are counted, until the view shows every
//     click (all on the same two cores).
func BenchmarkThroughput(b *testing.B) {
	for _, tc := range []struct{ users, clicks, partitions int }{
		{10, 1_000_000, 10},
		{1_000_000, 1_000_000, 10},
		{10, 200_000, 1},
		{10, 200_000, 100},
		{1_000, 200_000, 10},
		{100_000, 200_000, 10},
	} {
		b.Run(fmt.Sprintf("users=%d/partitions=%d", tc.users, tc.partitions), func(b *testing.B) {
			var produce, consume, pipeline, bareGoka, count, e2e float64
			for b.Loop() {
				e := newBenchEnv(b, tc.partitions)
				produce = e.bareProduce(string(clicks.Topic), tc.clicks, tc.users)
				consume = e.bareConsume(string(clicks.Topic), tc.clicks)
				pipeline = e.barePipeline(string(clicks.Topic), tc.clicks)
				bareGoka = e.bareGoka(tc.clicks)

				_, s, stopView := e.startSummaryView(filepath.Join(e.dir, "view"))
				stopProfile := profileCPU(b)
				_, stopProc := e.startProcessor(filepath.Join(e.dir, "processor"))
				start := time.Now()
				waitForTotal(b, s, int64(tc.clicks), 10*time.Minute)
				count = float64(tc.clicks) / time.Since(start).Seconds()
				stopProfile()

				start = time.Now()
				e.emitAsFastAsPossible(tc.clicks, tc.users, 0)
				waitForTotal(b, s, int64(2*tc.clicks), 10*time.Minute)
				e2e = float64(tc.clicks) / time.Since(start).Seconds()
				stopProc()
				stopView()
			}
			b.ReportMetric(e2e, "clicks/s")
			b.ReportMetric(count, "count/s")
			b.ReportMetric(consume, "bare-consume/s")
			b.ReportMetric(produce, "bare-produce/s")
			b.ReportMetric(pipeline, "bare-pipeline/s")
			b.ReportMetric(bareGoka, "bare-goka/s")
			b.ReportMetric(count/bareGoka, "count-to-goka")
			b.ReportMetric(count/pipeline, "count-to-pipeline")
			b.ReportMetric(count/consume, "count-to-consumer")
			b.ReportMetric(e2e/consume, "clicks-to-consumer")
			b.ReportMetric(e2e/produce, "clicks-to-producer")
		})
	}
}

// BenchmarkForeignClicks: what clicks written by another client cost.
// 200,000 clicks of 10 users (and of 1,000) are written to user-clicks
// once with goka's partitioner (FNV-1a, sarama's default: every click in
// its key's partition) and once with Java's (murmur2, also franz-go's and
// kafkajs': about 9 in 10 outside it, forwarded through the loop topic),
// then counted until the view shows them all; three rounds, taking turns
// going first. The figures are medians; murmur2-to-fnv1a is what the hop
// costs. With murmur2 as the table's hasher the two would swap.
// CLICKS_COUNT_PROFILE (see profileCPU) profiles the first murmur2 count.
func BenchmarkForeignClicks(b *testing.B) {
	const n = 200_000
	for _, users := range []int{10, 1_000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			partitioners := map[string]sarama.PartitionerConstructor{
				"fnv1a":   sarama.NewHashPartitioner,
				"murmur2": sarama.NewMurmur2Partitioner,
			}
			rates := map[string][]float64{}
			for b.Loop() {
				for round := range 3 {
					order := []string{"fnv1a", "murmur2"}
					if round%2 == 1 {
						order[0], order[1] = order[1], order[0]
					}
					for _, name := range order {
						e := newBenchEnv(b, clicks.DefaultPartitions)
						e.produceWith(partitioners[name], n, users)
						_, s, stopView := e.startSummaryView(filepath.Join(e.dir, "view"))
						stopProfile := func() {}
						if round == 0 && name == "murmur2" {
							stopProfile = profileCPU(b)
						}
						_, stopProc := e.startProcessor(filepath.Join(e.dir, "processor"))
						start := time.Now()
						waitForTotal(b, s, n, 10*time.Minute)
						rates[name] = append(rates[name], n/time.Since(start).Seconds())
						stopProfile()
						stopProc()
						stopView()
					}
				}
			}
			fnv, murmur := median(rates["fnv1a"]), median(rates["murmur2"])
			b.ReportMetric(fnv, "fnv1a-count/s")
			b.ReportMetric(murmur, "murmur2-count/s")
			b.ReportMetric(murmur/fnv, "murmur2-to-fnv1a")
		})
	}
}

// produceWith writes n clicks for user-0 … user-(users-1) to user-clicks
// with a producer configured as the program's but for its partitioner.
func (e *benchEnv) produceWith(partitioner sarama.PartitionerConstructor, n, users int) {
	e.b.Helper()
	cfg := e.k.Sarama()
	cfg.Producer.Partitioner = partitioner
	p := e.newProducerWith(cfg)
	value := sarama.StringEncoder(time.Now().String())
	for i := range n {
		p.Input() <- &sarama.ProducerMessage{Topic: string(clicks.Topic), Key: sarama.StringEncoder(fmt.Sprintf("user-%d", i%users)), Value: value}
	}
	p.close(e.b, "producer")
}

// median of xs, sorted in a copy: their order may be the rounds'.
func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// profileCPU writes a CPU profile of what runs until the returned stop
// to $CLICKS_COUNT_PROFILE/<benchmark>.prof, if that is set: the
// counting phase alone, without the bare references before it.
//
//	CLICKS_COUNT_PROFILE=/tmp go test -run '^$' -bench 'Throughput/users=10$/partitions=10$' -benchtime 1x ./internal/app
func profileCPU(b *testing.B) (stop func()) {
	dir := os.Getenv("CLICKS_COUNT_PROFILE")
	if dir == "" {
		return func() {}
	}
	name := strings.NewReplacer("/", "-", "=", "").Replace(b.Name())
	f, err := os.Create(filepath.Join(dir, name+".prof"))
	if err != nil {
		b.Fatalf("CLICKS_COUNT_PROFILE: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatalf("CLICKS_COUNT_PROFILE: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Errorf("CLICKS_COUNT_PROFILE: %v", err)
		}
	}
}

// processProfileArgs are the flags a whole-process benchmark gives the
// program it starts: with CLICKS_PROCESS_PROFILE set (a directory), the
// program serves its profiles (-pprof) so that profileProcess can take
// them; otherwise none.
func processProfileArgs() []string {
	if os.Getenv("CLICKS_PROCESS_PROFILE") == "" {
		return nil
	}
	return []string{"-pprof", "-pprof-listen", "127.0.0.1:0"}
}

// profileProcess takes, where CLICKS_PROCESS_PROFILE names a directory,
// a CPU profile and an execution trace (what waits, and on what) of the
// program p for the given seconds from now, into that directory, named
// after the benchmark and what; it returns at once, and the returned func
// waits for both files.
func profileProcess(b *testing.B, p *clickstest.Process, what string, seconds int) (wait func()) {
	dir := os.Getenv("CLICKS_PROCESS_PROFILE")
	if dir == "" {
		return func() {}
	}
	url := p.WaitForLog(regexp.MustCompile(`msg="profiles served" url=(\S+)`), 30*time.Second)[1]
	name := strings.NewReplacer("/", "-", "=", "").Replace(b.Name()) + "-" + what
	var wg sync.WaitGroup
	for file, path := range map[string]string{name + ".cpu.prof": "profile", name + ".trace": "trace"} {
		wg.Go(func() {
			res, err := http.Get(fmt.Sprintf("%s%s?seconds=%d", url, path, seconds))
			if err != nil {
				b.Errorf("CLICKS_PROCESS_PROFILE: %v", err)
				return
			}
			defer res.Body.Close()
			f, err := os.Create(filepath.Join(dir, file))
			if err != nil {
				b.Errorf("CLICKS_PROCESS_PROFILE: %v", err)
				return
			}
			if _, err := io.Copy(f, res.Body); err != nil {
				b.Errorf("CLICKS_PROCESS_PROFILE: %s: %v", file, err)
			}
			if err := f.Close(); err != nil {
				b.Errorf("CLICKS_PROCESS_PROFILE: %v", err)
			}
		})
	}
	return wg.Wait
}

// BenchmarkLatency: time from a click's emit to the view showing it, at
// the default rate (10 a second) and at 1,000 a second, with the
// program's emitter, processor and view.
func BenchmarkLatency(b *testing.B) {
	for _, tc := range []struct {
		rate   int
		probes int
	}{{10, 100}, {1000, 5000}} {
		b.Run(fmt.Sprintf("rate=%d", tc.rate), func(b *testing.B) {
			e := newBenchEnv(b, clicks.DefaultPartitions)
			e.startProcessor(filepath.Join(e.dir, "processor"))
			var (
				mu      sync.Mutex
				sentAt  = map[string]time.Time{}
				seen    = map[string]time.Duration{}
				arrived = make(chan struct{}, tc.probes)
			)
			s := web.NewSummary()
			e.startView(filepath.Join(e.dir, "view"), func(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
				err := s.Update(ctx, st, key, value)
				now := time.Now()
				mu.Lock()
				if t, ok := sentAt[key]; ok {
					if _, dup := seen[key]; !dup {
						seen[key] = now.Sub(t)
						arrived <- struct{}{}
					}
				}
				mu.Unlock()
				return err
			})
			em, err := clicks.NewEmitter(e.k.Brokers, clicks.Topic, e.k.EmitterOptions()...)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := em.Finish(); err != nil {
					b.Errorf("finish emitter: %v", err)
				}
			}()
			var latencies []time.Duration
			round := 0
			for b.Loop() {
				round++
				tick := time.NewTicker(time.Second / time.Duration(tc.rate))
				for i := range tc.probes {
					<-tick.C
					key := fmt.Sprintf("probe-%d-%d", round, i)
					mu.Lock()
					sentAt[key] = time.Now()
					mu.Unlock()
					if _, err := em.Emit(key, time.Now().String()); err != nil {
						b.Fatal(err)
					}
				}
				tick.Stop()
				for range tc.probes {
					select {
					case <-arrived:
					case <-time.After(30 * time.Second):
						b.Fatal("a click did not reach the view within 30s")
					}
				}
			}
			mu.Lock()
			for _, d := range seen {
				latencies = append(latencies, d)
			}
			mu.Unlock()
			slices.Sort(latencies)
			q := func(p float64) float64 {
				return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(float64(len(latencies)), "probes")
		})
	}
}

// fillTable writes one value for each of users keys straight into the
// group clicks.Table, as the processor would have.
func (e *benchEnv) fillTable(users int) {
	e.b.Helper()
	p := e.newProducer()
	for i := range users {
		v := fmt.Appendf(nil, `{"Clicks":%d,"Offset":%d}`, i%1000+1, i)
		p.Input() <- &sarama.ProducerMessage{Topic: string(clicks.Table), Key: sarama.StringEncoder(fmt.Sprintf("user-%d", i)), Value: sarama.ByteEncoder(v)}
	}
	p.close(e.b, "fill table")
}

// BenchmarkRecoveryProcess: a fresh view-only instance of the built
// program on a table of 1,000,000 users, from the process's start until
// GET /{the last user} answers 200: the recovery a user waits for, with
// the start-up, the topic and cache checks and the page around it; and
// until /-/summary counts every user (page-s), as the live page does. Three
// runs; the figures are medians, and the program's own log lines say how
// long the table's recovery alone took (recovery-s).
func BenchmarkRecoveryProcess(b *testing.B) {
	const users = 1_000_000
	e := newBenchEnv(b, clicks.DefaultPartitions)
	e.fillTable(users)
	clickstest.Build(b)
	last := fmt.Sprintf("/user-%d", users-1)
	recoveredRE := regexp.MustCompile(`msg="table recovered" part=view table=\S+ records=\d+ took=(\S+)`)
	var whole, page, recovery []float64
	for b.Loop() {
		for range 3 {
			start := time.Now()
			p := clickstest.StartProcess(b, append([]string{"-brokers", e.k.Brokers[0], "-emit=false", "-process=false",
				"-data", b.TempDir(), "-listen", "127.0.0.1:0", "-quiet"}, processProfileArgs()...)...)
			profiled := profileProcess(b, p, "fresh-view", 8)
			base := p.URL()
			for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
				res, err := http.Get(base + last)
				if err == nil {
					res.Body.Close()
					if res.StatusCode == http.StatusOK {
						break
					}
				}
				if time.Now().After(deadline) {
					b.Fatalf("GET %s did not answer 200 within 5 minutes", last)
				}
			}
			whole = append(whole, time.Since(start).Seconds())
			// And until the page has counted the table: what /-/summary
			// and the live page show.
			p.WaitForSummary(5*time.Minute, fmt.Sprintf("%d users", users), func(st clickstest.Summary) bool { return st.Users == users })
			page = append(page, time.Since(start).Seconds())
			took := p.WaitForLog(recoveredRE, 30*time.Second)[1]
			d, err := time.ParseDuration(took)
			if err != nil {
				b.Fatalf("recovery time %q: %v", took, err)
			}
			recovery = append(recovery, d.Seconds())
			profiled()
			p.Kill()
		}
	}
	b.ReportMetric(median(whole), "process-s")
	b.ReportMetric(users/median(whole), "process-records/s")
	b.ReportMetric(median(page), "page-s")
	b.ReportMetric(users/median(page), "page-records/s")
	b.ReportMetric(median(recovery), "recovery-s")
}

// BenchmarkRecovery: time until a view is ready on a table of many
// users, from the changelog alone (no local cache) and from a warm local
// cache, and the page's count of the table after it.
func BenchmarkRecovery(b *testing.B) {
	for _, tc := range []struct{ users, partitions int }{
		{1_000_000, 10}, {1_000, 10}, {100_000, 10}, {1_000_000, 1}, {1_000_000, 100},
	} {
		b.Run(fmt.Sprintf("users=%d/partitions=%d", tc.users, tc.partitions), func(b *testing.B) {
			e := newBenchEnv(b, tc.partitions)
			e.fillTable(tc.users)
			var cold, warm, scan time.Duration
			n := 0
			for b.Loop() {
				n++
				dir := filepath.Join(e.dir, fmt.Sprintf("view-%d", n))
				s := web.NewSummary()
				start := time.Now()
				_, tables, stop := e.startStoredView(dir, s.Update)
				cold += time.Since(start)
				start = time.Now()
				if err := s.Scan(tables); err != nil {
					b.Fatal(err)
				}
				scan += time.Since(start)
				if got := s.Snapshot().Users; got != int64(tc.users) {
					b.Fatalf("the view holds %d users, want %d", got, tc.users)
				}
				stop()
				start = time.Now()
				_, stop = e.startView(dir, goka.DefaultUpdate)
				warm += time.Since(start)
				stop()
			}
			per := func(d time.Duration) float64 { return d.Seconds() / float64(n) }
			b.ReportMetric(per(cold), "changelog-s")
			b.ReportMetric(float64(tc.users)/per(cold), "changelog-records/s")
			b.ReportMetric(per(warm), "warm-s")
			b.ReportMetric(per(scan), "page-count-s")
		})
	}
}

// httpLoad accumulates what loadHTTP measured over one or more rounds.
type httpLoad struct {
	elapsed   time.Duration
	latencies []time.Duration
}

func (l *httpLoad) rate() float64 { return float64(len(l.latencies)) / l.elapsed.Seconds() }

func (l *httpLoad) p99() time.Duration {
	slices.Sort(l.latencies)
	return l.latencies[len(l.latencies)*99/100]
}

// loadHTTP runs clients concurrent keep-alive clients against url(i) for
// d, and adds the requests it completed and their latencies to into.
func loadHTTP(b *testing.B, clients int, d time.Duration, url func(i int) string, into *httpLoad) {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var (
		mu       sync.Mutex
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	stop := time.Now().Add(d)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			var mine []time.Duration
			for i := c; time.Now().Before(stop); i += clients {
				t0 := time.Now()
				res, err := client.Get(url(i))
				if err != nil {
					failures.Add(1)
					continue
				}
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusOK {
					failures.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			into.latencies = append(into.latencies, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	into.elapsed += time.Since(start)
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d requests failed", f)
	}
}

// serveOn serves h on a loopback port with the program's server settings
// until the benchmark ends, and returns its base URL.
func serveOn(b *testing.B, h http.Handler) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := web.NewServer(h, slog.New(slog.DiscardHandler))
	go srv.Serve(ln) //nolint:errcheck // ends with Close below
	b.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// BenchmarkViewReads: GET /{user} per second and its p99 under concurrent
// clients, through the program's router (with its request metrics) on a
// table of 10,000 users, beside a bare net/http handler that writes a
// constant body, in the same run.
func BenchmarkViewReads(b *testing.B) {
	const users, clients, rounds, round = 10_000, 16, 6, time.Second
	e := newBenchEnv(b, clicks.DefaultPartitions)
	e.fillTable(users)
	v, _, _ := e.startSummaryView(filepath.Join(e.dir, "view"))
	router := web.NewRouter(v, metrics.New(), slog.New(slog.DiscardHandler), web.List(v))
	clicksURL := serveOn(b, router)
	body := []byte(`{"Clicks":153}`)
	bareURL := serveOn(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body) //nolint:errcheck
	}))
	paths := make([]string, users)
	for i := range paths {
		paths[i] = fmt.Sprintf("/user-%d", i)
	}
	// The load generator shares the machine with the server, so the two
	// handlers take turns in short rounds, each going first every other
	// round: a slow second on a noisy machine then falls on both.
	var clicks, bare httpLoad
	load := func(base string, into *httpLoad) {
		loadHTTP(b, clients, round, func(i int) string { return base + paths[i%users] }, into)
	}
	for b.Loop() {
		for r := range rounds {
			if r%2 == 0 {
				load(bareURL, &bare)
				load(clicksURL, &clicks)
			} else {
				load(clicksURL, &clicks)
				load(bareURL, &bare)
			}
		}
	}
	b.ReportMetric(clicks.rate(), "reads/s")
	b.ReportMetric(float64(clicks.p99().Microseconds())/1000, "p99-ms")
	b.ReportMetric(bare.rate(), "bare-reads/s")
	b.ReportMetric(float64(bare.p99().Microseconds())/1000, "bare-p99-ms")
	b.ReportMetric(clicks.rate()/bare.rate(), "ratio-to-bare")
}

// BenchmarkViewMemory: peak RSS and heap of a view-only instance
// (-emit=false -process=false) that serves a table of 1,000,000 users,
// measured on the built binary once it is ready and has counted the table.
func BenchmarkViewMemory(b *testing.B) {
	const users = 1_000_000
	e := newBenchEnv(b, clicks.DefaultPartitions)
	e.fillTable(users)
	clickstest.Build(b)
	for b.Loop() {
		p := clickstest.StartProcess(b, "-brokers", e.k.Brokers[0], "-emit=false", "-process=false",
			"-data", b.TempDir(), "-listen", "127.0.0.1:0", "-quiet")
		base := p.URL()
		p.WaitForSummary(5*time.Minute, fmt.Sprintf("%d users", users), func(st clickstest.Summary) bool { return st.Users == users })
		res, err := http.Get(base + "/-/metrics")
		if err != nil {
			b.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(res.Body)
		res.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		heap, ok := metricstest.Value(families, "go_memstats_heap_inuse_bytes")
		if !ok {
			b.Fatal("no go_memstats_heap_inuse_bytes in /-/metrics")
		}
		b.ReportMetric(procStatusMiB(b, p, "VmHWM"), "peak-rss-MiB")
		b.ReportMetric(procStatusMiB(b, p, "VmRSS"), "rss-MiB")
		b.ReportMetric(heap/(1<<20), "heap-inuse-MiB")
		p.Kill()
	}
}

// BenchmarkExport: GET /-/export of a view-only instance of the built
// program serving 1,000,000 users, from the request until the last line,
// against a raw read of the same table's changelog from the same broker
// in the same run (bare-consume/s); and the instance's peak RSS over the
// export (VmHWM, reset before it is measured only by the process's start:
// the peak of recovery and of the export together) and after it.
func BenchmarkExport(b *testing.B) {
	const users = 1_000_000
	e := newBenchEnv(b, clicks.DefaultPartitions)
	e.fillTable(users)
	clickstest.Build(b)
	consume := e.bareConsume(string(clicks.Table), users)
	for b.Loop() {
		p := clickstest.StartProcess(b, "-brokers", e.k.Brokers[0], "-emit=false", "-process=false",
			"-data", b.TempDir(), "-listen", "127.0.0.1:0", "-quiet")
		base := p.URL()
		p.WaitForSummary(5*time.Minute, fmt.Sprintf("%d users", users), func(st clickstest.Summary) bool { return st.Users == users })
		before := procStatusMiB(b, p, "VmHWM")
		start := time.Now()
		res, err := http.Get(base + "/-/export")
		if err != nil {
			b.Fatal(err)
		}
		lines := bufio.NewScanner(res.Body)
		n, last := 0, ""
		for lines.Scan() {
			n++
			last = lines.Text()
		}
		res.Body.Close()
		took := time.Since(start).Seconds()
		if err := lines.Err(); err != nil || n != users+1 || last != fmt.Sprintf(`{"complete":true,"users":%d}`, users) {
			b.Fatalf("export: %d lines (%v), last %q", n, err, last)
		}
		b.ReportMetric(users/took, "users/s")
		b.ReportMetric(consume, "bare-consume/s")
		b.ReportMetric(users/took/consume, "export-to-consume")
		b.ReportMetric(before, "peak-rss-before-MiB")
		b.ReportMetric(procStatusMiB(b, p, "VmHWM"), "peak-rss-MiB")
		b.ReportMetric(procStatusMiB(b, p, "VmRSS"), "rss-after-MiB")
		p.Kill()
	}
}
