package kafka

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/IBM/sarama"
)

// LimitRetention makes the brokers keep at most bytes of each topic (over
// all its partitions: Kafka's retention.bytes is per partition), deleting
// the oldest records beyond it as they do those older than the time
// retention; bytes <= 0 removes the limit. It is set on every start, so
// that the flag, not what an earlier run set, decides.
//
// clicks uses it for the embedded broker, whose memory grows with every
// record batch it keeps (see docs/operations.md).
func (k *Cluster) LimitRetention(client sarama.Client, bytes int64, topics ...string) (err error) {
	cfg := k.Config()
	// IncrementalAlterConfigs (Kafka 2.3): unlike AlterConfigs it leaves
	// the topic's other settings alone. goka's version (2.0) is older.
	cfg.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin(k.Brokers, cfg)
	if err != nil {
		return fmt.Errorf("connect to set retention: %w", err)
	}
	defer func() {
		if cerr := admin.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close admin that set retention: %w", cerr))
		}
	}()
	for _, topic := range topics {
		partitions, err := client.Partitions(topic)
		if err != nil {
			return fmt.Errorf("partitions of %s: %w", topic, err)
		}
		perPartition := int64(-1)
		if bytes > 0 {
			perPartition = max(bytes/int64(len(partitions)), 1)
		}
		v := strconv.FormatInt(perPartition, 10)
		entries := map[string]sarama.IncrementalAlterConfigsEntry{
			"retention.bytes": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v},
		}
		if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, entries, false); err != nil {
			return fmt.Errorf("set retention.bytes=%s on %s: %w", v, topic, err)
		}
	}
	return nil
}

// Gap is a range of records of a partition, offsets [From, To), that a
// group will never read: deleted by retention before the group read them,
// or lost from a log that now ends before what the group had read.
type Gap struct {
	Topic     string
	Partition int32
	From, To  int64
}

// Deleted finds, for each partition of topics, the records a group will
// not read because they were deleted: the log now starts after the offset
// the group committed (committed, as Committed returns it). A consumer
// goes on at the log start without a word (sarama's ResetInvalidOffsets),
// so this is the only place it can be seen. A log that now ends before
// the committed offset (a damaged log) is the start-up repair's.
func Deleted(client sarama.Client, committed map[string]map[int32]int64, topics ...string) ([]Gap, error) {
	var deleted []Gap
	for _, topic := range topics {
		if len(committed[topic]) == 0 {
			continue
		}
		starts, err := Offsets(client, topic, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		for p, c := range committed[topic] {
			if start := starts[p]; start > c {
				deleted = append(deleted, Gap{Topic: topic, Partition: p, From: c, To: start})
			}
		}
	}
	slices.SortFunc(deleted, compareGaps)
	return deleted, nil
}

func compareGaps(a, b Gap) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// Committed returns the offsets group committed for each partition of
// topics, by topic and partition; partitions it never committed are left
// out.
func (k *Cluster) Committed(client sarama.Client, group string, topics ...string) (map[string]map[int32]int64, error) {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("create cluster admin: %w", err)
	}
	// Not admin.Close: that would close the shared client.
	asked := map[string][]int32{}
	for _, topic := range topics {
		partitions, err := client.Partitions(topic)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		asked[topic] = partitions
	}
	offsets := map[string]map[int32]int64{}
	resp, err := admin.ListConsumerGroupOffsets(group, asked)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return offsets, nil // the group never committed
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	for _, topic := range topics {
		offsets[topic] = map[int32]int64{}
		for _, p := range asked[topic] {
			if b := resp.GetBlock(topic, p); b != nil && b.Offset >= 0 {
				offsets[topic][p] = b.Offset
			}
		}
	}
	return offsets, nil
}
