// Package app is the program: it parses the flags, builds the parts the
// flags switch on (the embedded broker, the emitter, the processor, the
// view and its HTTP server) and runs them under one errgroup until a
// signal or the first fatal error. main calls Run; so do the end-to-end
// tests.
package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"clicks/internal/broker"
	"clicks/internal/clicks"
)

// ExitCode reports err and maps it to the exit status: 0 for a clean stop
// or -h, 2 for bad usage, 1 for any other failure.
func ExitCode(err error, stderr io.Writer) int {
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
	replication     int // 0: chosen from the cluster's size (replication.go)
	minInsync       int // 0: chosen from the replication
	partitions      int
	partitionsGiven bool   // -partitions on the command line: existing topics must agree
	topic           string // the click topic
	pprof           bool   // serve Go's profiles on pprofListen
	pprofListen     string
	connectTimeout  time.Duration
	compactInterval time.Duration
	repairGroupWait time.Duration
	sync            bool
	cacheBatches    int
	brokerKeepMiB   int
	brokerFreeMiB   int

	// Not flags: tests shorten them.
	progressEvery time.Duration // how often a recovering table logs its progress
	feedTick      time.Duration // how often the live page's state is computed

	// Not a flag: chosen from the flags and GOMEMLIMIT (memoryBudget).
	budget budget
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
	fs.IntVar(&cfg.replication, "replication", 0, "replication factor of the topics clicks creates; 0: 3, or as many as the cluster has brokers if fewer")
	fs.IntVar(&cfg.minInsync, "min-insync", 0, "min.insync.replicas of the topics clicks creates: the replicas that must have a click before it is acknowledged; 0: 2 with 3 or more replicas, else 1")
	fs.IntVar(&cfg.partitions, "partitions", clicks.DefaultPartitions, "number of partitions of the topics clicks creates where none of them exists yet, at most 1000; otherwise they follow the existing ones")
	fs.StringVar(&cfg.topic, "topic", string(clicks.Topic), "the Kafka topic of the clicks (env CLICKS_TOPIC); goka's own 2-clicks writes to user-click")
	fs.BoolVar(&cfg.pprof, "pprof", false, "serve Go's profiles (net/http/pprof) under /-/debug/pprof/ on -pprof-listen")
	fs.StringVar(&cfg.pprofListen, "pprof-listen", "127.0.0.1:6060", "address of the profiles' server; keep it on loopback: profiles show the program's insides")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", 30*time.Second, "how long to wait for the brokers to answer at start")
	fs.DurationVar(&cfg.compactInterval, "compact-interval", time.Minute, "how often the embedded broker compacts the group table and deletes the clicks it keeps no more")
	fs.DurationVar(&cfg.repairGroupWait, "repair-group-wait", 0, "how long the start-up repair waits for the processor group to empty (a killed processor stays a member until its session times out) before it gives up making lost records counted again; 0: the session timeout and 5s")
	fs.IntVar(&cfg.cacheBatches, "cache-batches", 2, "changelog batches the processor's record cache keeps in flight; 0 writes every table update as it comes, as goka does")
	fs.IntVar(&cfg.brokerKeepMiB, "broker-keep-mib", 96, "MiB of clicks the embedded broker keeps (and as much of forwarded clicks), deleting the oldest beyond it as after 7 days; its memory grows with what it keeps: 96 MiB is about a day of the default emitter's clicks and about 70 MiB of memory; 0 keeps 7 days whatever their size")
	fs.IntVar(&cfg.brokerFreeMiB, "broker-min-free-mib", 64, "MiB the embedded broker keeps free on the disk of -data: below it, it refuses writes (the writers retry) until space returns; 0: no floor")
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
	source := "-brokers"
	if !set["brokers"] {
		brokers, source = getenv("KAFKA_BROKERS"), "KAFKA_BROKERS"
	}
	var err error
	if cfg.brokers, err = parseBrokers(brokers); err != nil {
		return cfg, usageError{fmt.Errorf("%s: %w", source, err)}
	}
	cfg.partitionsGiven = set["partitions"]
	source = "-topic"
	if !set["topic"] && getenv("CLICKS_TOPIC") != "" {
		cfg.topic, source = getenv("CLICKS_TOPIC"), "CLICKS_TOPIC"
	}
	if err := checkTopicName(cfg.topic); err != nil {
		return cfg, usageError{fmt.Errorf("%s: %w", source, err)}
	}
	switch {
	case cfg.interval <= 0:
		return cfg, usageError{fmt.Errorf("-interval must be positive, got %v", cfg.interval)}
	case cfg.users < 1:
		return cfg, usageError{fmt.Errorf("-users must be at least 1, got %d", cfg.users)}
	case cfg.partitions < 1:
		return cfg, usageError{fmt.Errorf("-partitions must be at least 1, got %d", cfg.partitions)}
	case cfg.partitions > maxPartitions:
		return cfg, usageError{fmt.Errorf("-partitions must be at most %d, got %d", maxPartitions, cfg.partitions)}
	case cfg.replication < 0:
		return cfg, usageError{fmt.Errorf("-replication must be at least 0, got %d", cfg.replication)}
	case cfg.minInsync < 0:
		return cfg, usageError{fmt.Errorf("-min-insync must be at least 0, got %d", cfg.minInsync)}
	case cfg.replication > 0 && cfg.minInsync > cfg.replication:
		return cfg, usageError{fmt.Errorf("-min-insync %d is above -replication %d: no write could ever be acknowledged", cfg.minInsync, cfg.replication)}
	case cfg.brokerCount < 1:
		return cfg, usageError{fmt.Errorf("-broker-count must be at least 1, got %d", cfg.brokerCount)}
	case cfg.connectTimeout <= 0:
		return cfg, usageError{fmt.Errorf("-connect-timeout must be positive, got %v", cfg.connectTimeout)}
	case cfg.cacheBatches < 0:
		return cfg, usageError{fmt.Errorf("-cache-batches must be at least 0, got %d", cfg.cacheBatches)}
	case cfg.brokerKeepMiB < 0:
		return cfg, usageError{fmt.Errorf("-broker-keep-mib must be at least 0, got %d", cfg.brokerKeepMiB)}
	case cfg.brokerFreeMiB < 0:
		return cfg, usageError{fmt.Errorf("-broker-min-free-mib must be at least 0, got %d", cfg.brokerFreeMiB)}
	case cfg.compactInterval <= 0:
		return cfg, usageError{fmt.Errorf("-compact-interval must be positive, got %v", cfg.compactInterval)}
	case cfg.repairGroupWait < 0:
		return cfg, usageError{fmt.Errorf("-repair-group-wait must be at least 0, got %v", cfg.repairGroupWait)}
	case cfg.dataDir == "":
		return cfg, usageError{errors.New("-data must not be empty")}
	case len(cfg.brokers) > 0 && !cfg.emit && !cfg.process && !cfg.serve:
		return cfg, usageError{errors.New("nothing to do: -emit, -process and -serve are all off and -brokers is set")}
	}
	if len(cfg.brokers) == 0 {
		if _, _, err := broker.SplitHostPort(cfg.brokerListen); err != nil {
			return cfg, usageError{fmt.Errorf("-broker-listen: %w", err)}
		}
	}
	if cfg.serve {
		if _, _, err := net.SplitHostPort(cfg.listen); err != nil {
			return cfg, usageError{fmt.Errorf("-listen: %w", err)}
		}
	}
	if cfg.pprof {
		if _, _, err := net.SplitHostPort(cfg.pprofListen); err != nil {
			return cfg, usageError{fmt.Errorf("-pprof-listen: %w", err)}
		}
	}
	cfg.budget = memoryBudget(cfg, getenv)
	return cfg, nil
}

// maxPartitions bounds -partitions: each partition of the three topics
// costs the embedded broker and the two local tables open files (1,000
// partitions took 8,087), and goka a goroutine or more per partition and
// part.
const maxPartitions = 1000

// parseBrokers splits a comma-separated broker list and checks that each
// entry is a host:port, so a typo fails at once instead of in a retry loop.
func parseBrokers(s string) ([]string, error) {
	var brokers []string
	for b := range strings.SplitSeq(s, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if _, _, err := broker.SplitHostPort(b); err != nil {
			return nil, err
		}
		brokers = append(brokers, b)
	}
	if s != "" && len(brokers) == 0 {
		return nil, fmt.Errorf("no broker in %q", s)
	}
	return brokers, nil
}

// checkTopicName refuses what Kafka would refuse as a topic name, and the
// names of the group's own topics.
func checkTopicName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q is not a topic name", name)
	case len(name) > 249:
		return fmt.Errorf("a topic name has at most 249 characters, %q has %d", name, len(name))
	case name == string(clicks.Table) || name == string(clicks.Loop):
		return fmt.Errorf("%s is the group's own topic, not one of clicks", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic %q: Kafka allows only letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}
