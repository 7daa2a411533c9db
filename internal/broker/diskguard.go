package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"clicks/internal/logs"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfake records an idempotent producer's sequence number before it
// writes the batch to disk and does not undo it when the write fails
// (00_produce.go: pushAndValidate, then pushBatch, which answers
// UNKNOWN_SERVER_ERROR). The producer's retry of that batch is then taken
// for a duplicate and acknowledged, though it is on no disk: with the disk
// full, 13 of 286,715 acknowledged clicks were lost.
//
// diskGuard keeps kfake from writing when the disk is nearly full: while
// the log's filesystem has less than a floor free, it answers produce
// requests KAFKA_STORAGE_ERROR, which clients retry, before kfake sees
// them. Nothing is acknowledged that is not written; the writers resume
// when space returns. The floor leaves room for what else is written (the
// groups' offsets, compaction, the local tables).
type diskGuard struct {
	dir     string
	floor   uint64
	logger  *slog.Logger
	repeat  *logs.Repeat
	refused atomic.Int64

	mu      sync.Mutex
	checked time.Time
	full    bool
	free    uint64
}

// diskCheckEvery is how often the free space is asked for, at most.
const diskCheckEvery = 50 * time.Millisecond

func newDiskGuard(dir string, floor uint64, logger *slog.Logger) *diskGuard {
	return &diskGuard{dir: dir, floor: floor, logger: logger, repeat: logs.NewRepeat(logger, 10*time.Second)}
}

// install makes c pass every produce request through the guard.
func (g *diskGuard) install(c *kfake.Cluster) {
	control(c, kmsg.Produce, controlRenewal, func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !g.isFull() {
			return nil, nil, false
		}
		c.KeepControl() // and the requests after this one
		g.refused.Add(1)
		g.repeat.Warn("the embedded broker's disk is nearly full: it refuses writes until space returns",
			"dir", g.dir, "free_mib", g.freeNow()>>20, "floor_mib", g.floor>>20)
		preq := req.(*kmsg.ProduceRequest)
		if preq.Acks == 0 {
			// No answer is expected; closing the connection is how a
			// broker says it did not write (and handling it without an
			// answer would leave kfake's connection muted).
			return nil, errors.New("disk nearly full"), true
		}
		return refuse(preq), nil, true
	})
}

// isFull tells whether the free space is below the floor, asking the
// filesystem at most every diskCheckEvery.
func (g *diskGuard) isFull() bool {
	return g.check(false)
}

// check asks the filesystem, unless it was asked less than
// diskCheckEvery ago and now is false, and tells whether the free space
// is below the floor.
func (g *diskGuard) check(now bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !now && time.Since(g.checked) < diskCheckEvery {
		return g.full
	}
	g.checked = time.Now()
	free, err := freeBytes(g.dir)
	if err != nil {
		g.full = false // unknown: let kfake try
		return false
	}
	wasFull := g.full
	g.free, g.full = free, free < g.floor
	if wasFull && !g.full {
		g.logger.Info("the embedded broker's disk has space again: it takes writes", "dir", g.dir, "free_mib", free>>20)
	}
	return g.full
}

func (g *diskGuard) freeNow() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.free
}

// refuse answers every partition of req with KAFKA_STORAGE_ERROR.
func refuse(req *kmsg.ProduceRequest) *kmsg.ProduceResponse {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = kerr.KafkaStorageError.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// roomToCompact tells whether the disk has room to compact topic under
// dir: kfake writes the kept records to new files while the backup keeps
// the old ones, so a compaction needs up to the table's size on top of
// the floor. A compaction that runs out of space loses the partition it
// was rewriting until the next start restores it from the backup.
func (g *diskGuard) roomToCompact(dir, topic string) (bool, error) {
	names, err := TablePartitionDirs(dir, topic)
	if err != nil {
		return false, err
	}
	var size uint64
	for _, name := range names {
		files, err := os.ReadDir(filepath.Join(dir, "partitions", name))
		if err != nil {
			return false, fmt.Errorf("size of %s: %w", name, err)
		}
		for _, f := range files {
			info, err := f.Info()
			if err != nil {
				return false, fmt.Errorf("size of %s: %w", name, err)
			}
			size += uint64(info.Size())
		}
	}
	free, err := freeBytes(dir)
	if err != nil {
		return true, nil // unknown: as without a guard
	}
	return free >= g.floor+size, nil
}
