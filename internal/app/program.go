package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"clicks/internal/broker"
	"clicks/internal/cache"
	"clicks/internal/clicks"
	"clicks/internal/kafka"
	"clicks/internal/metrics"
	"clicks/internal/repair"
	"clicks/internal/status"
	"clicks/internal/web"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"golang.org/x/sync/errgroup"
)

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

	k     *kafka.Config
	parts []status.Part   // what /-/ready reports on
	proc  *goka.Processor // nil unless the processor runs here
}

// start connects to the brokers, prepares topics and local caches, and
// starts each role.
func (prog *program) start(ctx context.Context, brokers []string, httpListener net.Listener) error {
	prog.k = kafka.New(brokers, prog.cfg.replication, prog.cfg.partitions, prog.logger)
	prog.k.PartitionsGiven = prog.cfg.partitionsGiven
	prog.k.UnfinishedBound = prog.cfg.budget.unfinished
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
		Broker: prog.broker, Metrics: prog.metrics, Logger: prog.logger, GroupWait: prog.cfg.repairGroupWait})
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
		return clicks.NewProcessor(prog.k.Brokers, counter, prog.k.ProcessorOptions(cache.Builder(prog.cacheDir("processor"), prog.cfg.budget.memtable), string(clicks.Table), prog.cfg.cacheBatches)...)
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
	tables := cache.NewTables(prog.cacheDir("view"), prog.cfg.budget.memtable)
	// A partition the page fails to count is counted again once the view
	// has recovered (the feed's scan): the page is no reason to fail the
	// view's recovery.
	countRecovered := func(partition int32) error {
		if err := summary.CountPartition(tables, partition); err != nil {
			prog.logger.Error("count a recovered partition for the page", "partition", partition, "err", err)
		}
		return nil
	}
	view, err := clicks.NewView(prog.k.Brokers, prog.k.ViewOptions(tables.Builder(countRecovered), summary.Update)...)
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
	feed := web.NewFeed(summary, storedView{tables, view}, prog.parts, lag.Reading, counts, prog.cfg.feedTick, prog.logger)
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

// storedView is the view as the live page counts it: whether it has
// recovered, and its local table as stored.
type storedView struct {
	*cache.Tables
	*clicks.View
}
