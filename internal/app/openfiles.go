package app

import (
	"fmt"

	"clicks/internal/broker"
)

// filesPerPartition estimates the files a partition keeps open: kfake
// keeps a segment of each of the three topics open, and the processor's
// and the view's local tables (LevelDB) about three each. With 1,000
// partitions of two topics the whole program held 8,087 open files.
const (
	brokerFilesPerPartition = 3
	cacheFilesPerPartition  = 3
	baseOpenFiles           = 128 // connections, the HTTP server, the runtime
)

// neededOpenFiles estimates the open files the parts cfg runs need.
func neededOpenFiles(cfg config) uint64 {
	per := 0
	if len(cfg.brokers) == 0 {
		per += brokerFilesPerPartition
	}
	if cfg.process {
		per += cacheFilesPerPartition
	}
	if cfg.serve {
		per += cacheFilesPerPartition
	}
	need := baseOpenFiles + uint64(per*cfg.partitions)
	if len(cfg.brokers) == 0 {
		// A reader of old clicks makes kfake open the segments it reads
		// and keep them open: at most one per SegmentBytes kept, of the
		// click topic and of the loop topic.
		need += 2 * uint64(cfg.brokerKeepMiB<<20/broker.SegmentBytes)
	}
	return need
}

// checkOpenFiles fails at start, with the reason, when the partitions
// asked for would need more open files than limit (0: unknown) allows,
// instead of "too many open files" somewhere later.
func checkOpenFiles(cfg config, limit uint64) error {
	need := neededOpenFiles(cfg)
	if limit == 0 || need <= limit {
		return nil
	}
	return fmt.Errorf("-partitions %d needs about %d open files, but the limit is %d: raise it (ulimit -n %d) or ask for fewer partitions", cfg.partitions, need, limit, need)
}
