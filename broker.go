package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// brokerConfig configures the embedded broker.
type brokerConfig struct {
	listen          string // host:port of the first broker; more brokers take the next ports
	count           int
	dir             string // where the broker keeps its log
	compactInterval time.Duration
	sync            bool // fsync every write
}

// embeddedBroker is a Kafka-protocol cluster in this process (kfake),
// persisted on disk, so clicks runs where there is no Kafka. Any Kafka
// client (kcat, sarama, franz-go) can talk to it.
type embeddedBroker struct {
	*kfake.Cluster
	dir             string
	compactInterval time.Duration
	logger          *slog.Logger
	sessions        *sessionWatch
}

// startEmbeddedBroker starts the cluster and reloads its log from cfg.dir.
// It has no authentication, which is why it listens on loopback by
// default.
func startEmbeddedBroker(cfg brokerConfig, logger *slog.Logger) (*embeddedBroker, error) {
	host, port, err := splitHostPort(cfg.listen)
	if err != nil {
		return nil, fmt.Errorf("embedded broker address: %w", err)
	}
	sessions := newSessionWatch()
	opts := []kfake.Opt{
		kfake.NumBrokers(cfg.count),
		kfake.DataDir(cfg.dir),
		kfake.WithLogger(kfakeLogger{logger.With("part", "broker")}),
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
			return sessions.listen(ln), nil
		}),
		kfake.BrokerConfigs(map[string]string{
			// kfake's own compaction timer would compact without the
			// backup that makes it safe (see compaction.go): push it out
			// of the way; compactPeriodically does the work.
			"log.cleaner.backoff.ms": strconv.FormatInt((365 * 24 * time.Hour).Milliseconds(), 10),
		}),
	}
	if cfg.sync {
		// kfake writes each batch to its segment file before it
		// acknowledges it, so a killed process loses nothing
		// acknowledged; only fsync keeps it through a power loss.
		opts = append(opts, kfake.SyncWrites())
	}
	if port != 0 {
		ports := make([]int, cfg.count)
		for i := range ports {
			ports[i] = port + i
		}
		opts = append(opts, kfake.Ports(ports...))
	}
	if err := restoreInterruptedCompaction(cfg.dir, logger); err != nil {
		return nil, fmt.Errorf("embedded broker data in %s: %w", cfg.dir, err)
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s with data in %s: %w (is another broker running? choose another -broker-listen, or use -brokers)", cfg.listen, cfg.dir, err)
	}
	return &embeddedBroker{Cluster: c, dir: cfg.dir, compactInterval: cfg.compactInterval, logger: logger, sessions: sessions}, nil
}

// compactPeriodically compacts the group table until ctx ends, each time
// behind a backup that a kill during the rebuild cannot destroy.
//
// kfake starts its own compaction timer only when a topic is created or
// altered, not after it reloads its log from disk, so without this the
// table would grow without bound after a restart.
func (b *embeddedBroker) compactPeriodically(ctx context.Context) error {
	t := time.NewTicker(b.compactInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := backupBeforeCompaction(b.dir, string(table)); err != nil {
				b.logger.Warn("compaction skipped", "err", err)
				continue
			}
			b.Compact()
			if err := dropCompactionBackup(b.dir); err != nil {
				b.logger.Warn("compaction", "err", err)
			}
		}
	}
}

// kfakeLogger passes the broker's warnings and errors to slog.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		k.l.Error(fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		k.l.Warn(fmt.Sprintf(format, args...))
	}
}
