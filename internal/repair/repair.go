// Package repair is the start-up repair of damaged logs: what a broker's
// log of user-clicks, the loop topic or the table lost (an end cut off, a
// hole in the middle, a changelog behind a local table) is found, said,
// and mended where it can be: lost offsets filled, counts made again,
// forwards made again, local tables written back. The program calls Run
// once at start, before the emitter, the processor and the view;
// RecordLogEnds runs beside the embedded broker for the next start's
// check. docs/damaged-logs.md says what it finds and what it assumes.
package repair

import (
	"log/slog"
	"path/filepath"
	"time"

	"clicks/internal/broker"
	"clicks/internal/kafka"
	"clicks/internal/metrics"
)

// Config is what the repair needs of the program.
type Config struct {
	Kafka   *kafka.Config
	Topic   string           // the click topic
	Process bool             // the processor runs in this instance
	Serve   bool             // the view runs in this instance
	DataDir string           // -data: the local tables are in processor/ and view/
	Broker  *broker.Embedded // nil unless the embedded broker runs in this instance
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// GroupWait is how long the repair waits for the processor group to
	// empty before it gives up making lost records counted again; 0: the
	// group's session timeout and 5 s.
	GroupWait time.Duration
}

// Repair is the start-up repair of one instance.
type Repair struct {
	k              *kafka.Config
	topic          string
	process, serve bool
	dataDir        string
	broker         *broker.Embedded
	metrics        *metrics.Metrics
	logger         *slog.Logger
	groupWait      time.Duration
}

// New returns the repair of the instance cfg describes.
func New(cfg Config) *Repair {
	return &Repair{k: cfg.Kafka, topic: cfg.Topic, process: cfg.Process, serve: cfg.Serve, dataDir: cfg.DataDir,
		broker: cfg.Broker, metrics: cfg.Metrics, logger: cfg.Logger, groupWait: cfg.GroupWait}
}

// cacheDir is where the local table of role (processor, view) is kept.
func (r *Repair) cacheDir(role string) string { return filepath.Join(r.dataDir, role) }
