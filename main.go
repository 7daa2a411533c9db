// Command clicks is the goka "2-clicks" example made into a program you can
// run anywhere: an emitter sends a click for user-0 … user-9 every 100 ms to
// the topic "user-clicks", a processor counts the clicks per user in the
// group table "mini-group-table", and a view serves the counts over HTTP:
//
//	go run .
//	curl localhost:9095/user-3
//	{"Clicks":153}
//
// With no -brokers (and no KAFKA_BROKERS), clicks starts an embedded
// Kafka-protocol broker in-process that keeps its log under -data, so it
// needs neither Docker nor a Kafka installation. With -brokers it runs
// against a real cluster, such as the one from docker-compose.yml.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lovoo/goka"
	"golang.org/x/sync/errgroup"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err and maps it to the exit status: 0 for a clean stop
// or -h, 2 for bad usage, 1 for any other failure.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "clicks: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "clicks: %v\n", err)
		return 1
	}
}

// usageError marks an error in the command line, which exits with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// config is everything run needs, parsed from flags and the environment.
type config struct {
	brokers         []string // empty: start the embedded broker
	brokerListen    string
	brokerCount     int
	dataDir         string
	listen          string
	interval        time.Duration
	users           int
	quiet           bool
	emit            bool
	process         bool
	serve           bool
	replication     int
	partitions      int
	connectTimeout  time.Duration
	compactInterval time.Duration
	sync            bool

	// Not flags: tests shorten them.
	progressEvery time.Duration // how often a recovering table logs its progress
	feedTick      time.Duration // how often the live page's state is computed
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var (
		cfg     config
		brokers string
	)
	fs := flag.NewFlagSet("clicks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&brokers, "brokers", "", "comma-separated Kafka brokers, e.g. 127.0.0.1:9092; empty starts an embedded broker (env KAFKA_BROKERS)")
	fs.StringVar(&cfg.brokerListen, "broker-listen", "127.0.0.1:9092", "address the embedded broker listens on (it has no authentication: keep it on loopback)")
	fs.IntVar(&cfg.brokerCount, "broker-count", 1, "number of brokers in the embedded cluster; they listen on consecutive ports")
	fs.StringVar(&cfg.dataDir, "data", "data", "state directory: the embedded broker's log and the local table caches")
	fs.StringVar(&cfg.listen, "listen", ":9095", "HTTP address of the view")
	fs.DurationVar(&cfg.interval, "interval", 100*time.Millisecond, "time between two clicks of the emitter")
	fs.IntVar(&cfg.users, "users", 10, "number of users the emitter clicks for (user-0 … user-N-1)")
	fs.BoolVar(&cfg.quiet, "quiet", false, "do not print a [proc] line for every click")
	fs.BoolVar(&cfg.emit, "emit", true, "run the emitter")
	fs.BoolVar(&cfg.process, "process", true, "run the processor")
	fs.BoolVar(&cfg.serve, "serve", true, "run the view and its HTTP server")
	fs.IntVar(&cfg.replication, "replication", 1, "replication factor of the topics clicks creates")
	fs.IntVar(&cfg.partitions, "partitions", defaultPartitions, "number of partitions of the topics clicks creates (existing topics keep theirs)")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", 30*time.Second, "how long to wait for the brokers to answer at start")
	fs.DurationVar(&cfg.compactInterval, "compact-interval", time.Minute, "how often the embedded broker compacts the group table")
	fs.BoolVar(&cfg.sync, "sync", false, "fsync the embedded broker's log on every write: survives a power loss, costs throughput")
	cfg.progressEvery = 5 * time.Second
	cfg.feedTick = 250 * time.Millisecond
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: clicks [flags]\n\nCounts clicks per user with goka and serves the counts at http://localhost:9095/{user}.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, usageError{err}
	}
	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["brokers"] {
		brokers = getenv("KAFKA_BROKERS")
	}
	var err error
	if cfg.brokers, err = parseBrokers(brokers); err != nil {
		return cfg, usageError{err}
	}
	switch {
	case cfg.interval <= 0:
		return cfg, usageError{fmt.Errorf("-interval must be positive, got %v", cfg.interval)}
	case cfg.users < 1:
		return cfg, usageError{fmt.Errorf("-users must be at least 1, got %d", cfg.users)}
	case cfg.partitions < 1:
		return cfg, usageError{fmt.Errorf("-partitions must be at least 1, got %d", cfg.partitions)}
	case cfg.replication < 1:
		return cfg, usageError{fmt.Errorf("-replication must be at least 1, got %d", cfg.replication)}
	case cfg.brokerCount < 1:
		return cfg, usageError{fmt.Errorf("-broker-count must be at least 1, got %d", cfg.brokerCount)}
	case cfg.connectTimeout <= 0:
		return cfg, usageError{fmt.Errorf("-connect-timeout must be positive, got %v", cfg.connectTimeout)}
	case cfg.compactInterval <= 0:
		return cfg, usageError{fmt.Errorf("-compact-interval must be positive, got %v", cfg.compactInterval)}
	case cfg.dataDir == "":
		return cfg, usageError{errors.New("-data must not be empty")}
	case len(cfg.brokers) > 0 && !cfg.emit && !cfg.process && !cfg.serve:
		return cfg, usageError{errors.New("nothing to do: -emit, -process and -serve are all off and -brokers is set")}
	}
	if len(cfg.brokers) == 0 {
		if _, _, err := splitHostPort(cfg.brokerListen); err != nil {
			return cfg, usageError{fmt.Errorf("-broker-listen: %w", err)}
		}
	}
	if cfg.serve {
		if _, _, err := net.SplitHostPort(cfg.listen); err != nil {
			return cfg, usageError{fmt.Errorf("-listen: %w", err)}
		}
	}
	return cfg, nil
}

// parseBrokers splits a comma-separated broker list and checks that each
// entry is a host:port, so a typo fails at once instead of in a retry loop.
func parseBrokers(s string) ([]string, error) {
	var brokers []string
	for b := range strings.SplitSeq(s, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if _, _, err := splitHostPort(b); err != nil {
			return nil, fmt.Errorf("-brokers: %w", err)
		}
		brokers = append(brokers, b)
	}
	if s != "" && len(brokers) == 0 {
		return nil, fmt.Errorf("-brokers: no broker in %q", s)
	}
	return brokers, nil
}

// splitHostPort is net.SplitHostPort that also checks the port number.
func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%q has an invalid port %q", addr, port)
	}
	return host, p, nil
}

// run is the whole program: it parses the flags, starts the parts that are
// switched on and runs them until ctx ends or SIGINT/SIGTERM arrives. It
// returns nil on a clean stop and the first fatal error otherwise.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	out := newProcOutput(stdout)
	stdout = out
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

	if err := ensureWritableDir(cfg.dataDir); err != nil {
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

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { out.flushPeriodically(gctx, 100*time.Millisecond, logger); return nil })
	brokers := cfg.brokers
	if len(brokers) == 0 {
		broker, err := startEmbeddedBroker(brokerConfig{
			listen:          cfg.brokerListen,
			count:           cfg.brokerCount,
			dir:             filepath.Join(cfg.dataDir, "broker"),
			compactInterval: cfg.compactInterval,
			sync:            cfg.sync,
		}, logger)
		if err != nil {
			return err
		}
		// The broker closes last, after every client below has stopped.
		defer broker.Close()
		g.Go(func() error { return broker.compactPeriodically(gctx) })
		g.Go(func() error { return broker.watchSessions(gctx, 2*time.Second) })
		brokers = broker.ListenAddrs()
		logger.Info("using the embedded Kafka broker", "addrs", strings.Join(brokers, ","), "data", broker.dir)
	} else {
		logger.Info("using Kafka brokers", "addrs", strings.Join(brokers, ","))
	}

	// Even the embedded broker alone prepares the topics, so that the
	// roles that join it later find them with the right settings.
	if err := startRoles(gctx, g, cfg, brokers, httpListener, logger, stdout); err != nil {
		g.Go(func() error { return err })
	}

	err = g.Wait()
	if err == nil {
		logger.Info("stopped")
	}
	return err
}

// startRoles connects to the brokers, prepares topics and local caches,
// and starts the emitter, processor and view that cfg switches on in g.
func startRoles(ctx context.Context, g *errgroup.Group, cfg config, brokers []string, httpListener net.Listener, logger *slog.Logger, stdout io.Writer) error {
	k := newKafka(brokers, cfg.replication, logger)
	k.partitions = cfg.partitions
	client, err := k.connect(ctx, cfg.connectTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting: not a failure
		}
		return err
	}
	defer client.Close()
	partitions, err := k.ensureTopics(client)
	if err != nil {
		return err
	}
	cacheDirs := map[string]string{}
	if cfg.process {
		cacheDirs["processor"] = filepath.Join(cfg.dataDir, "processor")
	}
	if cfg.serve {
		cacheDirs["view"] = filepath.Join(cfg.dataDir, "view")
	}
	if err := resetStaleCaches(client, string(table), cacheDirs, logger); err != nil {
		return err
	}

	// What the HTTP server reports on: readiness, metrics, the page.
	var (
		o       = ops{metrics: newClickMetrics()}
		view    *safeView
		proc    *goka.Processor
		summary = newTableSummary()
	)
	if cfg.emit {
		e, err := newClickEmitter(k)
		if err != nil {
			return err
		}
		g.Go(func() error { return runEmitter(ctx, e, cfg.interval, cfg.users, o.metrics, logger) })
	}
	if cfg.process {
		var out io.Writer = stdout
		if cfg.quiet {
			out = nil
		}
		id, err := k.topicID(string(topic))
		if err != nil {
			return err
		}
		counter := newClickCounter(out, id, partitions, o.metrics, logger.With("part", "processor"))
		if proc, err = newClickProcessor(k, cacheDirs["processor"], counter); err != nil {
			return err
		}
		o.parts = append(o.parts, processorPart(proc))
		o.processor = proc
		g.Go(func() error {
			if err := proc.Run(ctx); err != nil {
				return fmt.Errorf("processor: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			logRecovery(ctx, "processor", func() map[int32]*goka.TableStats { return processorTables(proc) }, proc.Recovered, cfg.progressEvery, logger)
			return nil
		})
	}
	if !cfg.serve {
		return nil
	}
	gv, err := newClickView(k, cacheDirs["view"], summary.update)
	if err != nil {
		return err
	}
	view = newSafeView(gv)
	o.parts = append(o.parts, viewPart(view))
	o.view, o.list = view, view
	g.Go(func() error {
		if err := view.Run(ctx); err != nil {
			return fmt.Errorf("view: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		logRecovery(ctx, "view", func() map[int32]*goka.TableStats { return view.Stats(ctx).Partitions }, view.Recovered, cfg.progressEvery, logger)
		return nil
	})
	lag, err := newLagWatch(k, view, cfg.process, 2*time.Second)
	if err != nil {
		return err
	}
	g.Go(func() error { return lag.Run(ctx) })
	o.metrics.watchView(summary, lag)
	if proc != nil {
		o.metrics.watchProcessorLag(lag)
	}
	for _, p := range o.parts {
		o.metrics.watchPart(p)
	}
	var counts func() *processorCounts
	if proc != nil {
		counts = o.metrics.processorCounts
	}
	o.feed = newPageFeed(summary, view, o.parts, lag.reading, counts, cfg.feedTick, logger)
	g.Go(func() error { return o.feed.Run(ctx) })
	g.Go(func() error { return serveHTTP(ctx, httpListener, newRouter(view, &o, logger), stdout, logger) })
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

// procOutput is stdout, for the [proc] line of each click and the "View
// opened" line. Partitions are processed concurrently and each line must
// come out whole, so writes are serialized; and they are buffered: at full
// speed a write system call per click cost a third of the throughput when
// stdout is a pipe (150k -> 100k clicks/s). The buffer is flushed every
// 100 ms, after the "View opened" line and when the program stops.
type procOutput struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func newProcOutput(w io.Writer) *procOutput {
	return &procOutput{w: bufio.NewWriterSize(w, 64<<10)}
}

func (o *procOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

// Flush writes what is buffered.
func (o *procOutput) Flush() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Flush()
}

// flushPeriodically flushes every interval until ctx ends; the first
// failure is logged.
func (o *procOutput) flushPeriodically(ctx context.Context, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := o.Flush(); err != nil && !failed {
				failed = true
				logger.Warn("write to stdout", "err", err)
			}
		}
	}
}
