package kafka

import (
	"errors"
	"fmt"
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
func (k *Config) LimitRetention(client sarama.Client, bytes int64, topics ...string) (err error) {
	cfg := k.Sarama()
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
