// Package broker is the embedded Kafka-protocol broker (kfake) that clicks
// starts when no -brokers are given, persisted on disk, with the fixes
// around it: compaction behind a backup (compaction.go) and the expiry of
// group members kfake keeps (sessions.go). See docs/upstream.md.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"clicks/internal/logs"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// retentionInterval is how often the embedded broker deletes what it
// keeps no more, at most.
const retentionInterval = 10 * time.Second

// SegmentBytes is the size at which the embedded broker starts a new
// segment file of a partition's log.
const SegmentBytes = 1 << 20

// Config configures the embedded broker.
type Config struct {
	Listen          string // host:port of the first broker; more brokers take the next ports
	Count           int    // brokers in the cluster; 0 is 1
	Dir             string // where the broker keeps its log
	Table           string // the compacted topic it compacts itself (see CompactPeriodically)
	CompactInterval time.Duration
	Sync            bool   // fsync every write
	MinFree         uint64 // bytes the log's filesystem keeps free: below, writes are refused (0: no floor)
	// Hold, if not nil, holds writes from the broker's start until
	// OpenWrites (see WriteHold).
	Hold *WriteHold
}

// Embedded is a Kafka-protocol cluster in this process (kfake),
// persisted on disk, so clicks runs where there is no Kafka. Any Kafka
// client (kcat, sarama, franz-go) can talk to it.
type Embedded struct {
	*kfake.Cluster
	cfg      Config
	logger   *slog.Logger
	sessions *sessionWatch
	disk     *diskGuard // nil without a floor
	nodes    *nodes     // for StopNode
	gate     *writeGate // nil unless Config.Hold

	previousEnds LogEnds  // recorded by the last run, read at start
	addrs        []string // of the brokers at start, by kfake node ID
}

// Start starts the cluster and reloads its log from cfg.Dir. It has no
// authentication, which is why it listens on loopback by default.
func Start(cfg Config, logger *slog.Logger) (*Embedded, error) {
	cfg.Count = max(cfg.Count, 1)
	host, port, err := SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded broker address: %w", err)
	}
	sessions := newSessionWatch()
	ready := make(chan struct{}) // closed once the cluster is set up: then it accepts connections
	defer close(ready)
	nodes := newNodes()
	opts := []kfake.Opt{
		kfake.NumBrokers(cfg.Count),
		kfake.DataDir(cfg.Dir),
		kfake.WithLogger(newKfakeLogger(logger.With("part", "broker"))),
		// kfake asks for 127.0.0.1:<port>; listen on the host asked for.
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, p, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ln, err := net.Listen(network, net.JoinHostPort(host, p))
			if err != nil {
				return nil, err
			}
			return nodes.track(sessions.listen(heldListener{ln, ready})), nil
		}),
		kfake.BrokerConfigs(map[string]string{
			// kfake's own compaction timer would compact without the
			// backup that makes it safe (see compaction.go): push it out
			// of the way; CompactPeriodically does the work.
			"log.cleaner.backoff.ms": strconv.FormatInt((365 * 24 * time.Hour).Milliseconds(), 10),
			// Segments of 1 MiB instead of 100: kfake frees the memory
			// of deleted records (an index entry per batch) and their
			// disk a whole segment at a time, and at start it reads a
			// segment of each partition into memory at once, with its
			// batches decoded (docs/operations.md has the figures).
			"log.segment.bytes": strconv.Itoa(SegmentBytes),
		}),
	}
	if cfg.Sync {
		// kfake writes each batch to its segment file before it
		// acknowledges it, so a killed process loses nothing
		// acknowledged; only fsync keeps it through a power loss.
		opts = append(opts, kfake.SyncWrites())
	}
	if port != 0 {
		ports := make([]int, cfg.Count)
		for i := range ports {
			ports[i] = port + i
		}
		opts = append(opts, kfake.Ports(ports...))
	}
	if err := restoreInterruptedCompaction(cfg.Dir, logger); err != nil {
		return nil, fmt.Errorf("embedded broker data in %s: %w", cfg.Dir, err)
	}
	previousEnds, err := loadLogEnds(cfg.Dir)
	if err != nil {
		// Not a reason not to start: the check it serves is one of three.
		logger.Warn("the log ends recorded by the last run cannot be read: a log that lost its end above what the processor counted goes unnoticed this once", "part", "broker", "err", err)
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s with data in %s: %w (is another broker running? choose another -broker-listen, or use -brokers)", cfg.Listen, cfg.Dir, err)
	}
	b := &Embedded{Cluster: c, cfg: cfg, logger: logger, sessions: sessions, nodes: nodes, addrs: c.ListenAddrs(), previousEnds: previousEnds}
	if cfg.MinFree > 0 {
		b.disk = newDiskGuard(cfg.Dir, cfg.MinFree, logger.With("part", "broker"))
		b.disk.install(c)
	}
	if cfg.Hold != nil {
		b.hold(*cfg.Hold)
	}
	return b, nil
}

// WritesRefused is how many produce requests the broker refused because
// its disk was nearly full.
func (b *Embedded) WritesRefused() int64 {
	if b.disk == nil {
		return 0
	}
	return b.disk.refused.Load()
}

// DiskFull tells whether the disk of the broker's log has less free than
// the floor (-broker-min-free-mib), so that the broker refuses writes,
// and how many MiB it has free. It asks the filesystem now: a part that
// just failed may have met the full disk before the guard's last look.
func (b *Embedded) DiskFull() (full bool, freeMiB uint64) {
	if b.disk == nil {
		return false, 0
	}
	full = b.disk.check(true)
	return full, b.disk.freeNow() >> 20
}

// Dir is where the broker keeps its log.
func (b *Embedded) Dir() string { return b.cfg.Dir }

// CompactPeriodically compacts the table until ctx ends, each time
// behind a backup that a kill during the rebuild cannot destroy, and
// deletes what the topics' retention settings keep no more.
//
// kfake starts its own compaction timer only when a topic is created or
// altered, not after it reloads its log from disk, so without this the
// table would grow without bound after a restart.
func (b *Embedded) CompactPeriodically(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.ListenAddrs()...))
	if err != nil {
		return fmt.Errorf("compaction client: %w", err)
	}
	defer cl.Close()
	guard := newLogStartGuard(b.cfg.Table)
	guard.install(b.Cluster)
	// The log starts as the last run's compactions left them.
	guard.begin()
	if err := guard.end(ctx, cl); err != nil {
		b.logger.Warn("log start of the table", "err", err)
	}
	t := time.NewTicker(b.cfg.CompactInterval)
	defer t.Stop()
	// Deleting what the retention settings keep no more (compaction does
	// it too) is cheap, and done more often bounds what a burst of clicks
	// adds to the broker's memory before it is deleted.
	retention := time.NewTicker(min(b.cfg.CompactInterval, retentionInterval))
	defer retention.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-retention.C:
			b.ApplyRetention()
		case <-t.C:
			if b.disk != nil {
				if ok, err := b.disk.roomToCompact(b.cfg.Dir, b.cfg.Table); err != nil {
					b.disk.repeat.Warn("compaction skipped: cannot tell whether the disk has room for a copy of the table", "err", err)
					continue
				} else if !ok {
					b.disk.repeat.Warn("compaction skipped: the disk has no room for a copy of the table")
					continue
				}
			}
			if err := BackupBeforeCompaction(b.cfg.Dir, b.cfg.Table); err != nil {
				b.logger.Warn("compaction skipped", "err", err)
				continue
			}
			guard.begin()
			b.Compact()
			if err := guard.end(ctx, cl); err != nil && ctx.Err() == nil {
				b.logger.Warn("log start of the table after compaction", "err", err)
			}
			if err := dropCompactionBackup(b.cfg.Dir); err != nil {
				b.logger.Warn("compaction", "err", err)
			}
		}
	}
}

// SplitHostPort is net.SplitHostPort that also checks the port number.
func SplitHostPort(addr string) (string, int, error) {
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

// kfakeLogger passes the broker's warnings and errors to slog. kfake
// says one for every write to its files that fails ("persist batch
// user-clicks-3: ... no space left on device"): with the disk full, a line
// per click; those are logged once per interval for each kind, with how
// many there were. Every other line (a corrupt segment truncated at
// start, one per partition) is logged as it comes.
type kfakeLogger struct {
	l      *slog.Logger
	writes *logs.Repeat
}

func newKfakeLogger(l *slog.Logger) kfakeLogger {
	return kfakeLogger{l: l, writes: logs.NewRepeat(l, 10*time.Second)}
}

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lv slog.Level
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	default:
		return
	}
	if strings.HasPrefix(format, "persist ") {
		k.writes.Log(lv, format, fmt.Sprintf(format, args...))
		return
	}
	k.l.Log(context.Background(), lv, fmt.Sprintf(format, args...))
}
