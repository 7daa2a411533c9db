package broker

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfake's compaction moves a partition's log start offset up to the first
// record it keeps (data.go, compact: pd.logStartOffset =
// kept[0].FirstOffset). Kafka never moves the log start by compaction: a
// reader positioned at a record compaction removed reads on from the next
// one kept. kfake answers its next fetch OffsetOutOfRange instead, on
// which goka's view and processor fail and the program exits. Any reader
// of the table that lags behind records a compaction removes hits it:
// under load, at nearly every compaction; after a restart, a local table
// cache older than the last compaction.
//
// logStartGuard stands in for Kafka's behaviour. It knows the log start
// of each partition of the table after each compaction and moves a fetch
// for an offset below it up to it, which is what Kafka would answer (the
// next record kept). While a compaction runs, fetches of the table wait
// for it to end and the new log starts to be known.
type logStartGuard struct {
	topic string

	mu      sync.Mutex
	ready   chan struct{} // closed while starts is current
	starts  map[int32]int64
	topicID [16]byte // fetch v13 and later name the topic by ID
}

func newLogStartGuard(topic string) *logStartGuard {
	ready := make(chan struct{})
	close(ready)
	return &logStartGuard{topic: topic, ready: ready, starts: map[int32]int64{}}
}

// install makes c pass every fetch through the guard.
func (g *logStartGuard) install(c *kfake.Cluster) {
	control(c, kmsg.Fetch, controlRenewal, func(req kmsg.Request) (kmsg.Response, error, bool) {
		g.adjust(c, req.(*kmsg.FetchRequest))
		return nil, nil, false // kfake answers the (adjusted) fetch
	})
}

// adjust raises the offsets of req that lie below the table's log start.
// It runs on kfake's request loop: it may wait only through SleepControl,
// which lets the loop (and the compaction) go on. kfake also runs admin
// work, a compaction among it, while a control function runs: a
// compaction that begins while the offsets are adjusted makes it wait and
// adjust again. One that begins in the instant between the adjustment and
// kfake's handling of the fetch is not covered; the reader then fails,
// and the program rebuilds it.
func (g *logStartGuard) adjust(c *kfake.Cluster, req *kmsg.FetchRequest) {
	g.mu.Lock()
	id := g.topicID
	g.mu.Unlock()
	var parts []kmsg.FetchRequestTopicPartition
	for i := range req.Topics {
		t := &req.Topics[i]
		if t.Topic == g.topic || (t.Topic == "" && id != [16]byte{} && t.TopicID == id) {
			parts = t.Partitions
		}
	}
	if parts == nil {
		return
	}
	for {
		g.mu.Lock()
		ready := g.ready
		g.mu.Unlock()
		select {
		case <-ready:
		default:
			c.SleepControl(func() { <-ready })
		}
		g.mu.Lock()
		current := g.ready == ready
		if current {
			for i := range parts {
				p := &parts[i]
				if start, ok := g.starts[p.Partition]; ok && p.FetchOffset >= 0 && p.FetchOffset < start {
					p.FetchOffset = start
				}
			}
		}
		g.mu.Unlock()
		if current {
			return
		}
	}
}

// begin makes fetches of the table wait until end.
func (g *logStartGuard) begin() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ready = make(chan struct{})
}

// end learns the table's log starts from the cluster and lets the
// fetches go on. If they cannot be learned, fetches go on with the ones
// known before, and the error is returned.
func (g *logStartGuard) end(ctx context.Context, cl *kgo.Client) error {
	starts, id, err := logStarts(ctx, cl, g.topic)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		g.starts, g.topicID = starts, id
	}
	select {
	case <-g.ready:
	default:
		close(g.ready)
	}
	return err
}

// logStarts asks for the log start offset of each partition of topic, and
// its ID. A topic that does not exist yet has none.
func logStarts(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, [16]byte, error) {
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		return nil, [16]byte{}, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	starts := map[int32]int64{}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		return starts, [16]byte{}, nil // not created yet
	}
	list := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition = p.Partition
		lp.Timestamp = -2 // the earliest offset: the log start
		lt.Partitions = append(lt.Partitions, lp)
	}
	list.Topics = append(list.Topics, lt)
	lresp, err := list.RequestWith(ctx, cl)
	if err != nil {
		return nil, [16]byte{}, fmt.Errorf("log start offsets of %s: %w", topic, err)
	}
	for _, t := range lresp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return nil, [16]byte{}, fmt.Errorf("log start offset of %s/%d: error code %d", topic, p.Partition, p.ErrorCode)
			}
			starts[p.Partition] = p.Offset
		}
	}
	return starts, mresp.Topics[0].TopicID, nil
}
