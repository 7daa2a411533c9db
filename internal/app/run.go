package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"clicks/internal/broker"
	"clicks/internal/cache"
	"clicks/internal/clicks"
	"clicks/internal/kafka"
	"clicks/internal/logs"
	"clicks/internal/metrics"
	"clicks/internal/repair"
	"clicks/internal/status"
	"clicks/internal/web"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"golang.org/x/sync/errgroup"
)

// embeddedMemoryLimit is the Go runtime's soft memory limit when the
// embedded broker runs and GOMEMLIMIT is not set.
const embeddedMemoryLimit = 160 << 20

// Run is the whole program: it parses the flags, starts the parts that are
// switched on and runs them until ctx ends or SIGINT/SIGTERM arrives. It
// returns nil on a clean stop and the first fatal error otherwise.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	// stdout has the [proc] line of each click and the "View opened"
	// line. Partitions are processed concurrently and each line must come
	// out whole, so writes are serialized; and they are buffered: a write
	// system call per click cost a third of the counting rate when stdout
	// is a pipe (docs/performance.md). The buffer is flushed every 100 ms,
	// after the "View opened" line and when the program stops.
	out := logs.Lock(bufio.NewWriterSize(stdout, 64<<10))
	defer func() {
		if ferr := out.Flush(); ferr != nil {
			logger.Warn("write to stdout", "err", ferr)
		}
	}()

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()

	if len(cfg.brokers) == 0 && getenv("GOMEMLIMIT") == "" {
		// Under a flood of clicks the heap grows well past what the
		// embedded broker keeps, left to GOGC alone; a soft limit keeps
		// the whole program within 200 MiB at some cost to the counting
		// rate under such a flood, and none at the default 10 clicks/s
		// (BenchmarkWeekOfClicks, docs/performance.md). GOMEMLIMIT
		// overrides it.
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(embeddedMemoryLimit))
	}
	if err := ensureWritableDir(cfg.dataDir); err != nil {
		return err
	}
	unlock, err := lockDataDir(cfg.dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := checkOpenFiles(cfg, openFileLimit()); err != nil {
		return err
	}

	// Bind the HTTP port first, so a busy port is an error now, not after
	// the broker and the processor have started.
	var httpListener net.Listener
	if cfg.serve {
		if httpListener, err = net.Listen("tcp", cfg.listen); err != nil {
			return fmt.Errorf("listen for HTTP on %s: %w", cfg.listen, err)
		}
		defer httpListener.Close()
	}

	var pprofListener net.Listener
	if cfg.pprof {
		if pprofListener, err = net.Listen("tcp", cfg.pprofListen); err != nil {
			return fmt.Errorf("listen for profiles on %s: %w", cfg.pprofListen, err)
		}
		defer pprofListener.Close()
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { flushPeriodically(gctx, out, 100*time.Millisecond, logger); return nil })
	if pprofListener != nil {
		g.Go(func() error { return web.ServeDebug(gctx, pprofListener, logger) })
	}
	brokers := cfg.brokers
	var embedded *broker.Embedded
	if len(brokers) == 0 {
		b, err := startBroker(gctx, g, cfg, logger)
		if err != nil {
			return err
		}
		embedded = b
		// The broker closes last, after every client below has stopped.
		defer b.Close()
		brokers = b.ListenAddrs()
	} else {
		logger.Info("using Kafka brokers", "addrs", strings.Join(brokers, ","))
	}

	// Even the embedded broker alone prepares the topics, so that the
	// instances that join it later find them with the right settings.
	prog := program{cfg: cfg, g: g, logger: logger, stdout: out, metrics: metrics.New(), broker: embedded}
	if err := prog.start(gctx, brokers, httpListener); err != nil {
		g.Go(func() error { return err })
	}

	err = g.Wait()
	if err == nil {
		logger.Info("stopped")
	}
	return err
}

// originalTopic is where goka's own examples/2-clicks writes its clicks.
const originalTopic = "user-click"

// warnOfOriginalTopic says so where the cluster has the click topic of
// goka's 2-clicks and clicks reads another: clicks still written there by
// the original's emitter would never be counted.
func (prog *program) warnOfOriginalTopic(client sarama.Client) {
	if prog.cfg.topic == originalTopic {
		return
	}
	topics, err := client.Topics()
	if err == nil && slices.Contains(topics, originalTopic) {
		prog.logger.Warn("the cluster has the topic of goka's 2-clicks, which clicks does not read: clicks written there are not counted; start clicks with -topic "+originalTopic+" to count them",
			"topic", originalTopic, "reading", prog.cfg.topic)
	}
}

// startBroker starts the embedded broker and its housekeeping in g.
func startBroker(ctx context.Context, g *errgroup.Group, cfg config, logger *slog.Logger) (*broker.Embedded, error) {
	b, err := broker.Start(broker.Config{
		Listen:          cfg.brokerListen,
		Count:           cfg.brokerCount,
		Dir:             filepath.Join(cfg.dataDir, "broker"),
		Table:           string(clicks.Table),
		CompactInterval: cfg.compactInterval,
		Sync:            cfg.sync,
		MinFree:         uint64(cfg.brokerFreeMiB) << 20,
		// Other clients' writes to the click topics wait for the
		// start-up repair to fill what their logs lost (see
		// repair.Repair.Run).
		Hold: &broker.WriteHold{Filler: clicks.FillerHeader, Topics: []string{cfg.topic, string(clicks.Loop)}},
	}, logger)
	if err != nil {
		return nil, err
	}
	g.Go(func() error { return b.CompactPeriodically(ctx) })
	g.Go(func() error { return b.WatchSessions(ctx, 2*time.Second) })
	logger.Info("using the embedded Kafka broker", "addrs", strings.Join(b.ListenAddrs(), ","), "data", b.Dir(), "keeps_mib", cfg.brokerKeepMiB)
	return b, nil
}

// program is one running instance: it connects to the brokers, prepares
// the topics, has the start-up repair run, and starts the emitter, the
// processor and the view that cfg switches on, each in g, and the HTTP
// server that reports on them.
type program struct {
	cfg     config
	g       *errgroup.Group
	logger  *slog.Logger
	stdout  io.Writer
	metrics *metrics.Metrics

	broker *broker.Embedded // nil unless the embedded broker runs here

	k     *kafka.Cluster
	parts []status.Part   // what /-/ready reports on
	proc  *goka.Processor // nil unless the processor runs here
}

// start connects to the brokers, prepares topics and local caches, and
// starts each role.
func (prog *program) start(ctx context.Context, brokers []string, httpListener net.Listener) error {
	prog.k = kafka.New(brokers, prog.cfg.replication, prog.cfg.partitions, prog.logger)
	prog.k.PartitionsGiven = prog.cfg.partitionsGiven
	client, err := prog.k.Connect(ctx, prog.cfg.connectTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting: not a failure
		}
		return err
	}
	defer client.Close()
	if err := prog.chooseReplication(client); err != nil {
		return err
	}
	partitions, err := prog.k.EnsureTopics(client, kafka.Topics{Stream: prog.cfg.topic, Table: string(clicks.Table), Loop: string(clicks.Loop)})
	if err != nil {
		return tooFewBrokers(err, prog.k.Replication, client)
	}
	prog.warnOfOriginalTopic(client)
	if len(prog.cfg.brokers) == 0 {
		if err := prog.k.LimitRetention(client, int64(prog.cfg.brokerKeepMiB)<<20, prog.cfg.topic, string(clicks.Loop)); err != nil {
			return err
		}
	}
	// Before the emitter starts: new clicks must not take offsets a
	// damaged log lost before they are filled (see repair.Repair.Run).
	fix := repair.New(repair.Config{Kafka: prog.k, Topic: prog.cfg.topic, Process: prog.cfg.process, Serve: prog.cfg.serve, DataDir: prog.cfg.dataDir,
		Broker: prog.broker, Metrics: prog.metrics, Logger: prog.logger})
	if err := fix.Run(ctx, client); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while it waited: not a failure
		}
		return err
	}
	if prog.broker != nil {
		// After the repair (which opened the broker to writes once it
		// had filled the lost ends): the ends recorded before are what
		// it compared with.
		prog.g.Go(func() error { return fix.RecordLogEnds(ctx) })
	}
	if prog.cfg.emit {
		if err := prog.startEmitter(ctx); err != nil {
			return err
		}
	}
	if prog.cfg.process {
		if err := prog.startProcessor(ctx, partitions); err != nil {
			return err
		}
	}
	if prog.cfg.serve {
		return prog.startView(ctx, httpListener)
	}
	return nil
}

// cacheDir is where a role keeps its local copy of the table.
func (prog *program) cacheDir(role string) string { return filepath.Join(prog.cfg.dataDir, role) }

func (prog *program) startEmitter(ctx context.Context) error {
	e, err := clicks.NewEmitter(prog.k.Brokers, goka.Stream(prog.cfg.topic), prog.k.EmitterOptions()...)
	if err != nil {
		return err
	}
	prog.g.Go(func() error {
		return clicks.RunEmitter(ctx, e, prog.cfg.interval, prog.cfg.users, prog.metrics, prog.logger)
	})
	return nil
}

// failureNote is what the line of a failed part adds about the program:
// that the embedded broker's disk is nearly full, which goka's error does
// not always say (a write that found no space is "an unexpected server
// error" to the client).
func (prog *program) failureNote() []any {
	if prog.broker == nil {
		return nil
	}
	if full, free := prog.broker.DiskFull(); full {
		return []any{"disk", fmt.Sprintf("the embedded broker's disk is nearly full (%d MiB free): it refuses writes until space returns", free)}
	}
	return nil
}

func (prog *program) startProcessor(ctx context.Context, partitions int32) error {
	var out io.Writer = prog.stdout
	if prog.cfg.quiet {
		out = nil
	}
	id, err := prog.k.TopicID(prog.cfg.topic)
	if err != nil {
		return err
	}
	counter := clicks.NewCounter(out, id, partitions, prog.metrics, prog.logger.With("part", "processor"))
	counter.Stream = goka.Stream(prog.cfg.topic)
	build := func() (*goka.Processor, error) {
		return clicks.NewProcessor(prog.k.Brokers, counter, prog.k.ProcessorOptions(cache.Builder(prog.cacheDir("processor")), string(clicks.Table), prog.cfg.cacheBatches)...)
	}
	proc, err := build()
	if err != nil {
		return err
	}
	// goka's processor cannot run twice: one that failed is replaced.
	var current atomic.Pointer[goka.Processor]
	current.Store(proc)
	prog.proc = proc
	prog.parts = append(prog.parts, status.ProcessorPart(current.Load))
	prog.g.Go(func() error {
		run := func(ctx context.Context) error { return stoppedDuringStartup(ctx, current.Load().Run(ctx)) }
		rebuild := func() error {
			p, err := build()
			if err == nil {
				current.Store(p)
			}
			return err
		}
		return keepRunning(ctx, "processor", prog.logger, run, rebuild, prog.failureNote)
	})
	prog.g.Go(func() error {
		status.LogRecovery(ctx, "processor", string(clicks.Table), func() map[int32]*goka.TableStats { return status.ProcessorTables(current.Load()) },
			func() bool { return current.Load().Recovered() }, prog.cfg.progressEvery, prog.logger)
		return nil
	})
	return nil
}

// startView starts the view, what watches it (lag, metrics, the live
// page) and the HTTP server.
func (prog *program) startView(ctx context.Context, httpListener net.Listener) error {
	summary := web.NewSummary()
	view, err := clicks.NewView(prog.k.Brokers, prog.k.ViewOptions(cache.Builder(prog.cacheDir("view")), summary.Update)...)
	if err != nil {
		return err
	}
	prog.parts = append(prog.parts, status.ViewPart(view))
	prog.g.Go(func() error { return keepRunning(ctx, "view", prog.logger, view.Run, view.Rebuild, prog.failureNote) })
	prog.g.Go(func() error {
		status.LogRecovery(ctx, "view", string(clicks.Table), func() map[int32]*goka.TableStats { return view.Stats(ctx).Partitions }, view.Recovered, prog.cfg.progressEvery, prog.logger)
		return nil
	})
	group := ""
	if prog.proc != nil {
		group = string(clicks.Group)
	}
	lag, err := status.NewLagWatch(prog.k, view, string(clicks.Table), prog.cfg.topic, group, 2*time.Second, prog.logger)
	if err != nil {
		return err
	}
	prog.g.Go(func() error { return lag.Run(ctx) })

	m := prog.metrics
	m.WatchView(func() int64 { return summary.Snapshot().Total }, func() int64 { return summary.Snapshot().Users }, lag.Reading)
	var counts func() *metrics.ProcessorCounts
	if prog.proc != nil {
		m.WatchProcessorLag(lag.Reading)
		counts = m.ProcessorCounts
	}
	for _, p := range prog.parts {
		m.WatchPart(p)
	}
	feed := web.NewFeed(summary, view, prog.parts, lag.Reading, counts, prog.cfg.feedTick, prog.logger)
	prog.g.Go(func() error { return feed.Run(ctx) })
	brokers := status.NewBrokerWatch(prog.k.Brokers, time.Second, 2*time.Second, prog.logger)
	prog.g.Go(func() error { return brokers.Run(ctx) })
	m.WatchBrokers(func() bool { ok, _, _ := brokers.Answering(); return ok })
	if prog.broker != nil {
		m.WatchWritesRefused(prog.broker.WritesRefused)
	}
	router := web.NewRouter(view, m, prog.logger, web.Ready(append(prog.parts, brokers.Part())), web.List(view), web.Export(view), web.Page(feed), web.GokaPages(view, prog.proc))
	prog.g.Go(func() error { return web.Serve(ctx, httpListener, router, prog.stdout, prog.logger) })
	return nil
}

// ensureWritableDir creates dir if needed and checks that files can be
// written in it, so an unwritable -data fails before anything starts.
func ensureWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	if err := errors.Join(f.Close(), os.Remove(name)); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	return nil
}

// flushPeriodically flushes out every interval until ctx ends; the first
// failure is logged.
func flushPeriodically(ctx context.Context, out *logs.Locked[*bufio.Writer], every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := out.Flush(); err != nil && !failed {
				failed = true
				logger.Warn("write to stdout", "err", err)
			}
		}
	}
}
