package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/kafka"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// manyUsers is how many users BenchmarkManyUsers writes one click each
// for.
const manyUsers = 1_000_000

// BenchmarkManyUsers: what a user waits for when another client writes
// the clicks of many users. One click for each of 1,000,000 users (u0 …
// u999999) is written by kcat in one go (snappy, linger 50 ms) into the
// embedded broker of a running clicks -emit=false, whole processes all:
//
//   - crc32: kcat's default partitioner, which puts 9 clicks in 10 outside
//     their user's partition in goka's scheme: forwarded through the loop
//     topic;
//   - goka: the same clicks written into goka's own partitions (-p);
//   - crc32-random and goka-random: the same two with the users in a
//     random order (the same in every run). In user order, a partition's
//     new users come mostly in ascending key order, above every key its
//     table caches hold, and LevelDB finds each absent without looking in
//     a file; users who click in no order cost a look in each file of
//     level 0 (passed over on its Bloom filter) and the compactions
//     those looks set off.
//
// Counted: from the first write until /-/summary's total is 1,000,000;
// its reference is a raw franz-go read of the topic then (the lower the
// ratio, the more clicks costs over reading). Fresh view: a view-only
// process with an empty -data against that broker, from its start until
// its /-/summary counts every user; its reference is a raw read of the
// table. Peak RSS: of the counting process until the count; idle RSS: 5 s
// after it. CPU: the counting process's CPU time per click, until the
// count (its embedded broker's work included). Five rounds, each crc32
// case run next to its goka case, the order reversed every other round;
// medians; the time of each crc32 case to its goka case and the CPU, the
// median of the rounds' ratios (the CPU moves less with the machine's
// noise).
//
// bare-goka: the same two cases in user order with a bare goka processor
// (see bareGokaCount) in this process against a broker-only clicks, kcat
// writing as for clicks: what the hop through the loop topic costs in goka
// itself, next to what clicks pays for it; and after each fresh view, a
// bare goka view (see bareGokaView) recovering the same table.
// CLICKS_PROCESS_PROFILE (see profileProcess) profiles the counting of
// the first round. With KAFKA_BROKERS (make bench-kafka) the same runs on
// that cluster, clicks' topics and group deleted before each count.
func BenchmarkManyUsers(b *testing.B) {
	kcat := needKcat(b)
	clickstest.Build(b)
	inputs := map[string]manyUsersInput{ // by the order of the users
		"":       writeManyUsers(b, nil),
		"random": writeManyUsers(b, rand.New(rand.NewPCG(1, 2)).Perm(manyUsers)),
	}
	real := kafkaBrokers(b)
	type result struct{ count, countRead, cpu, view, viewRead, rss, peak []float64 }
	modes := []string{"crc32", "goka", "crc32-random", "goka-random"}
	results := map[string]*result{}
	for _, mode := range modes {
		results[mode] = &result{}
		results["bare-goka-"+mode] = &result{}
	}
	for b.Loop() {
		for round := range manyUsersRounds {
			// Each crc32 case next to its goka case, so that the ratio of
			// a round compares two runs the machine's noise met alike;
			// every other round in the reverse order.
			turns := slices.Clone(modes)
			if round%2 == 1 {
				slices.Reverse(turns)
			}
			for _, mode := range turns {
				partitioner, order, _ := strings.Cut(mode, "-")
				input := inputs[order]
				r := results[mode]
				args := []string{"-emit=false", "-data", b.TempDir(), "-listen", "127.0.0.1:0", "-quiet"}
				if real != "" {
					resetRealCluster(b, strings.Split(real, ","), string(clicks.Topic), string(clicks.Table), string(clicks.Loop))
					args = append(args, "-brokers", real)
				} else {
					args = append(args, "-broker-listen", fmt.Sprintf("127.0.0.1:%d", clickstest.FreePort(b)))
				}
				p := clickstest.StartProcess(b, append(args, processProfileArgs()...)...)
				brokers := p.WaitForBrokers()
				p.WaitForReadiness(200, time.Minute)
				profiled := func() {}
				if round == 0 {
					profiled = profileProcess(b, p, mode, 10)
				}
				cpu := procCPUSeconds(b, p.PID())
				start := time.Now()
				sent := kcatWrite(b, kcat, strings.Join(brokers, ","), input, partitioner)
				p.WaitForSummary(10*time.Minute, fmt.Sprintf("%d clicks", manyUsers), func(st clickstest.Summary) bool { return st.Total == manyUsers })
				r.count = append(r.count, manyUsers/time.Since(start).Seconds())
				r.cpu = append(r.cpu, (procCPUSeconds(b, p.PID())-cpu)/manyUsers)
				if err := sent(); err != nil {
					b.Fatal(err)
				}
				profiled()
				r.peak = append(r.peak, procStatusMiB(b, p, "VmHWM"))
				r.countRead = append(r.countRead, rawRead(b, brokers, string(clicks.Topic), manyUsers))
				time.Sleep(5 * time.Second) // idle after the burst
				r.rss = append(r.rss, procStatusMiB(b, p, "VmRSS"))

				start = time.Now()
				v := clickstest.StartProcess(b, "-brokers", strings.Join(brokers, ","), "-emit=false", "-process=false",
					"-data", b.TempDir(), "-listen", "127.0.0.1:0", "-quiet")
				v.WaitForSummary(5*time.Minute, fmt.Sprintf("%d users", manyUsers), func(st clickstest.Summary) bool { return st.Users == manyUsers })
				r.view = append(r.view, manyUsers/time.Since(start).Seconds())
				v.Kill()
				r.viewRead = append(r.viewRead, rawRead(b, brokers, string(clicks.Table), manyUsers))
				bare, withBare := results["bare-goka-"+mode], real == "" && order == ""
				if withBare {
					bare.view = append(bare.view, bareGokaView(b, brokers))
				}
				p.Stop()

				if withBare {
					rate, cpu := bareGokaCount(b, kcat, input, partitioner)
					bare.count, bare.cpu = append(bare.count, rate), append(bare.cpu, cpu)
				}
			}
		}
	}
	for mode, r := range results {
		if len(r.count) == 0 {
			continue
		}
		b.ReportMetric(median(r.cpu)*1e6, mode+"-CPU-us/click")
		if strings.HasPrefix(mode, "bare-goka-") {
			b.ReportMetric(median(r.count), mode+"-count/s")
			b.ReportMetric(median(r.view), mode+"-view-records/s")
			continue
		}
		count, view := median(r.count), median(r.view)
		b.ReportMetric(count, mode+"-count/s")
		b.ReportMetric(count/median(r.countRead), mode+"-count-to-raw-read")
		b.ReportMetric(view, mode+"-fresh-view-records/s")
		b.ReportMetric(view/median(r.viewRead), mode+"-fresh-view-to-raw-read")
		if bare := results["bare-goka-"+mode]; len(bare.view) > 0 {
			b.ReportMetric(view/median(bare.view), mode+"-fresh-view-to-bare-goka-view")
		}
		b.ReportMetric(median(r.rss), mode+"-idle-RSS-MiB")
		b.ReportMetric(median(r.peak), mode+"-peak-RSS-MiB")
	}
	for _, prefix := range []string{"", "bare-goka-"} {
		for _, order := range []string{"", "-random"} {
			crc32, goka := results[prefix+"crc32"+order], results[prefix+"goka"+order]
			if len(crc32.count) == 0 {
				continue
			}
			// Medians of the rounds' ratios: the rounds are the pairs.
			times, cpus := pairRatios(goka.count, crc32.count), pairRatios(crc32.cpu, goka.cpu)
			b.ReportMetric(median(times), prefix+"crc32"+order+"-time-to-goka"+order)
			b.ReportMetric(median(cpus), prefix+"crc32"+order+"-CPU-to-goka"+order)
			b.Logf("%scrc32%s to goka%s, each round: time %.2f, CPU %.2f", prefix, order, order, times, cpus)
		}
	}
}

// manyUsersRounds is how many times BenchmarkManyUsers runs each case:
// the ratio of two three-round medians moved with the machine's noise
// from run to run; the median of five rounds' own ratios moves less
// (docs/performance.md, "Many users").
const manyUsersRounds = 5

// pairRatios is each round's num over its den.
func pairRatios(num, den []float64) []float64 {
	ratios := make([]float64, len(num))
	for i := range num {
		ratios[i] = num[i] / den[i]
	}
	return ratios
}

// bareGokaCount counts the input's clicks with a bare goka processor that
// does what clicks' design asks of goka and nothing more: a click outside
// its key's partition goes through the loop topic (goka.Loopback) and is
// counted there, as an int64 in goka's own LevelDB storage; no offsets
// kept for exactly once, no record cache, no view. It runs in this process
// against a broker-only clicks process, with the sarama configuration
// clicks uses, while kcat writes as it does for clicks. It returns the
// clicks counted per second from the first write, and the CPU seconds per
// click of this process and the broker's.
func bareGokaCount(b *testing.B, kcat string, in manyUsersInput, partitioner string) (rate, cpuPerClick float64) {
	b.Helper()
	broker := clickstest.StartProcess(b, "-emit=false", "-process=false", "-serve=false", "-data", b.TempDir(),
		"-broker-listen", fmt.Sprintf("127.0.0.1:%d", clickstest.FreePort(b)), "-quiet")
	defer broker.Stop()
	brokers := broker.WaitForBrokers()
	broker.WaitForLog(regexp.MustCompile(`msg="checked the logs for damage"`), 30*time.Second) // the topics are there
	k := kafka.New(brokers, 1, clicks.DefaultPartitions, slog.New(slog.DiscardHandler))

	var counted atomic.Int64
	done := make(chan struct{})
	count := func(ctx goka.Context) {
		n, _ := ctx.Value().(int64)
		ctx.SetValue(n + 1)
		if counted.Add(1) == manyUsers {
			close(done)
		}
	}
	graph := goka.DefineGroup(goka.Group(fmt.Sprintf("bare-goka-%d", rand.Int())),
		goka.Input(clicks.Topic, new(codec.String), func(ctx goka.Context, msg any) {
			if clicks.KeyPartition(ctx.Key(), clicks.DefaultPartitions) != ctx.Partition() {
				ctx.Loopback(ctx.Key(), msg)
				return
			}
			count(ctx)
		}),
		goka.Loop(new(codec.String), func(ctx goka.Context, _ any) { count(ctx) }),
		goka.Persist(new(codec.Int64)),
	)
	p, err := goka.NewProcessor(brokers, graph, append(bareGokaOptions(k), goka.WithStorageBuilder(storage.DefaultBuilder(b.TempDir())))...)
	if err != nil {
		b.Fatal(err)
	}
	stopped := make(chan error, 1) // a processor that stops while counting
	run := func(ctx context.Context) error {
		err := p.Run(ctx)
		stopped <- err
		return err
	}
	e := &benchEnv{b: b, k: k}
	defer e.runPart("bare goka processor", run, p.Recovered)()

	cpu := ownCPUSeconds(b) + procCPUSeconds(b, broker.PID())
	start := time.Now()
	sent := kcatWrite(b, kcat, strings.Join(brokers, ","), in, partitioner)
	select {
	case <-done:
	case err := <-stopped:
		b.Fatalf("bare goka processor stopped after %d clicks: %v", counted.Load(), err)
	case <-time.After(10 * time.Minute):
		b.Fatalf("bare goka processor counted %d of %d clicks in 10 minutes", counted.Load(), manyUsers)
	}
	rate = manyUsers / time.Since(start).Seconds()
	cpuPerClick = (ownCPUSeconds(b) + procCPUSeconds(b, broker.PID()) - cpu) / manyUsers
	if err := sent(); err != nil {
		b.Fatal(err)
	}
	return rate, cpuPerClick
}

// bareGokaView recovers clicks' table from brokers with a bare goka view
// in this process: goka's own LevelDB storage, the values kept as stored
// bytes, nothing decoded, counted or served. It returns the records
// recovered per second, from its start until it has recovered: what
// goka's view alone takes for the table a fresh clicks view recovers (that
// one timed as a whole process, from its start to every user on the page).
func bareGokaView(b *testing.B, brokers []string) float64 {
	b.Helper()
	k := kafka.New(brokers, 1, clicks.DefaultPartitions, slog.New(slog.DiscardHandler))
	start := time.Now()
	v, err := goka.NewView(brokers, clicks.Table, new(codec.Bytes),
		goka.WithViewStorageBuilder(storage.DefaultBuilder(b.TempDir())),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(k.Sarama())),
		goka.WithViewTopicManagerBuilder(k.TopicManagerBuilder()))
	if err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{b: b, k: k}
	stop := e.runPart("bare goka view", v.Run, v.Recovered)
	rate := manyUsers / time.Since(start).Seconds()
	stop()
	return rate
}

// procCPUSeconds is the CPU time process pid has used, in seconds.
func procCPUSeconds(b *testing.B, pid int) float64 {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// pid (comm) state ppid ... utime stime: the 14th and 15th fields,
	// counted after the command, which may hold spaces.
	_, rest, _ := strings.Cut(string(stat), ") ")
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, stat)
	}
	var ticks float64
	for _, f := range fields[11:13] {
		t, err := strconv.ParseFloat(f, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += t
	}
	return ticks / 100 // USER_HZ
}

// ownCPUSeconds is the CPU time this process has used, in seconds.
func ownCPUSeconds(b *testing.B) float64 {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// manyUsersInput is the clicks BenchmarkManyUsers writes, as kcat reads
// them (key:value lines): all of them, and those of each of goka's
// partitions, in one order of the users.
type manyUsersInput struct {
	all        string
	partitions []string
}

// writeManyUsers writes the input with the users in order, u0 first, or
// in the order of users (a permutation of 0 … manyUsers-1) if it is not
// nil.
func writeManyUsers(b *testing.B, users []int) manyUsersInput {
	b.Helper()
	dir := b.TempDir()
	in := manyUsersInput{all: filepath.Join(dir, "all")}
	files := make([]*os.File, clicks.DefaultPartitions)
	writers := make([]*bufio.Writer, clicks.DefaultPartitions)
	for p := range files {
		name := filepath.Join(dir, strconv.Itoa(p))
		in.partitions = append(in.partitions, name)
		f, err := os.Create(name)
		if err != nil {
			b.Fatal(err)
		}
		files[p], writers[p] = f, bufio.NewWriter(f)
	}
	all, err := os.Create(in.all)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(all)
	value := time.Now().UTC().Format(time.RFC3339)
	for i := range manyUsers {
		if users != nil {
			i = users[i]
		}
		key := "u" + strconv.Itoa(i)
		line := key + ":" + value + "\n"
		w.WriteString(line)
		writers[clicks.KeyPartition(key, clicks.DefaultPartitions)].WriteString(line)
	}
	for p, f := range files {
		if err := errors.Join(writers[p].Flush(), f.Close()); err != nil {
			b.Fatal(err)
		}
	}
	if err := errors.Join(w.Flush(), all.Close()); err != nil {
		b.Fatal(err)
	}
	return in
}

// kcatWrite starts kcat writing the input to broker, with kcat's default
// partitioner (crc32) or into goka's partitions (goka), and returns a
// func that waits for it to finish.
func kcatWrite(b *testing.B, kcat, broker string, in manyUsersInput, partitioner string) (wait func() error) {
	b.Helper()
	args := []string{"-P", "-b", broker, "-t", string(clicks.Topic), "-K:", "-z", "snappy", "-X", "linger.ms=50"}
	var cmds []*exec.Cmd
	if partitioner == "crc32" {
		cmds = append(cmds, exec.Command(kcat, append(args, "-l", in.all)...))
	} else {
		for p, file := range in.partitions {
			cmds = append(cmds, exec.Command(kcat, append(args, "-p", strconv.Itoa(p), "-l", file)...))
		}
	}
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
	}
	return func() error {
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				return fmt.Errorf("kcat: %w", err)
			}
		}
		return nil
	}
}

// rawRead reads at least n records of topic from its start with franz-go
// and returns the records read per second.
func rawRead(b *testing.B, brokers []string, topic string, n int) float64 {
	b.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	read := 0
	for read < n {
		fetches := client.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			b.Fatalf("read %s: %v after %d records", topic, err, read)
		}
		read += fetches.NumRecords()
	}
	return float64(read) / time.Since(start).Seconds()
}
