package repair

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// Rewind sets the offset group has committed for partition of topic
// back to offset, so that its next member reads on from there. The
// coordinator refuses it while the group has members.
func Rewind(client sarama.Client, group, topic string, partition int32, offset int64) error {
	coordinator, err := client.Coordinator(group)
	if err != nil {
		return fmt.Errorf("coordinator of %s: %w", group, err)
	}
	// A commit outside any generation, as a consumer without a group
	// session makes it.
	req := &sarama.OffsetCommitRequest{Version: 2, ConsumerGroup: group,
		ConsumerGroupGeneration: sarama.GroupGenerationUndefined, RetentionTime: -1}
	req.AddBlock(topic, partition, offset, 0, "")
	resp, err := coordinator.CommitOffset(req)
	if err == nil {
		if kerr, ok := resp.Errors[topic][partition]; !ok {
			err = errors.New("no answer for the partition")
		} else if !errors.Is(kerr, sarama.ErrNoError) {
			err = kerr
		}
	}
	if err != nil {
		return fmt.Errorf("rewind %s in %s/%d to %d: %w", group, topic, partition, offset, err)
	}
	return nil
}

// GroupMembers returns how many members group has and its state as the
// coordinator tells it ("Empty" or "Dead" without members: a group that
// never existed is "Dead").
func GroupMembers(client sarama.Client, group string) (members int, state string, err error) {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return 0, "", fmt.Errorf("create cluster admin: %w", err)
	}
	// Not admin.Close: that would close the shared client.
	groups, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil {
		return 0, "", fmt.Errorf("describe group %s: %w", group, err)
	}
	for _, g := range groups {
		if g.GroupId != group {
			continue
		}
		if !errors.Is(g.Err, sarama.ErrNoError) {
			return 0, "", fmt.Errorf("describe group %s: %w", group, g.Err)
		}
		return len(g.Members), g.State, nil
	}
	return 0, "", fmt.Errorf("describe group %s: no answer for the group", group)
}

// Committed returns the offsets group committed for each partition of
// topics, by topic and partition; partitions it never committed are left
// out.
func Committed(client sarama.Client, group string, topics ...string) (map[string]map[int32]int64, error) {
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
