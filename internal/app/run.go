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
	"strings"
	"syscall"
	"time"

	"clicks/internal/broker"
	"clicks/internal/cache"
	"clicks/internal/clicks"
	"clicks/internal/filler"
	"clicks/internal/kafka"
	"clicks/internal/logs"
	"clicks/internal/metrics"
	"clicks/internal/web"

	"golang.org/x/sync/errgroup"
)

// embeddedMemoryLimit is the Go runtime's soft memory limit when the
// embedded broker runs and GOMEMLIMIT is not set.
const embeddedMemoryLimit = 160 << 20

// budget is how the program spends memory.
type budget struct {
	limit      int64          // the soft memory limit clicks sets; 0: none
	memtable   cache.Memtable // of the local table caches
	unfinished int            // writes the processor's record cache lets goka have unfinished
}

// memoryBudget returns the budget for cfg's process.
//
// Under a flood of clicks the heap grows well past what the embedded
// broker keeps, left to GOGC alone; a soft limit keeps the whole program
// within 200 MiB at some cost to the counting rate under such a flood, and
// none at the default 10 clicks/s (BenchmarkWeekOfClicks,
// docs/performance.md). GOMEMLIMIT overrides it, and against a cluster the
// program is the user's to size. Within the limit the live heap is what
// the collector marks again and again, so the table caches keep smaller
// memtables and goka fewer unacknowledged messages: a million users'
// clicks from kcat were counted 1.4 times as fast, and served to a fresh
// view 1.6 times as fast by the broker in the same process.
func memoryBudget(cfg config, getenv func(string) string) budget {
	if len(cfg.brokers) == 0 && getenv("GOMEMLIMIT") == "" {
		return budget{embeddedMemoryLimit, cache.SmallMemtable, kafka.SmallUnfinishedBound}
	}
	return budget{0, cache.LargeMemtable, kafka.UnfinishedBound}
}

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

	if cfg.budget.limit > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(cfg.budget.limit))
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
		Hold: &broker.WriteHold{Filler: filler.Header, Topics: []string{cfg.topic, string(clicks.Loop)}},
	}, logger)
	if err != nil {
		return nil, err
	}
	g.Go(func() error { return b.CompactPeriodically(ctx) })
	g.Go(func() error { return b.WatchSessions(ctx, 2*time.Second) })
	logger.Info("using the embedded Kafka broker", "addrs", strings.Join(b.ListenAddrs(), ","), "data", b.Dir(), "keeps_mib", cfg.brokerKeepMiB)
	return b, nil
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
