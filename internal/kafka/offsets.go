package kafka

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// Offsets asks each partition's leader of topic name for the partition's
// offset at (sarama.OffsetNewest: the next it will write, the log end;
// sarama.OffsetOldest: the log start), one request per broker rather than
// one per partition.
func Offsets(client sarama.Client, name string, at int64) (map[int32]int64, error) {
	if err := client.RefreshMetadata(name); err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", name, err)
	}
	parts, err := client.Partitions(name)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", name, err)
	}
	requests := map[*sarama.Broker]*sarama.OffsetRequest{}
	asked := map[*sarama.Broker][]int32{}
	for _, p := range parts {
		leader, err := client.Leader(name, p)
		if err != nil {
			return nil, fmt.Errorf("leader of %s/%d: %w", name, p, err)
		}
		req, ok := requests[leader]
		if !ok {
			req = &sarama.OffsetRequest{Version: 1}
			requests[leader] = req
		}
		req.AddBlock(name, p, at, 1)
		asked[leader] = append(asked[leader], p)
	}
	offsets := make(map[int32]int64, len(parts))
	for broker, req := range requests {
		resp, err := broker.GetAvailableOffsets(req)
		if err != nil {
			return nil, fmt.Errorf("offsets of %s from broker %d: %w", name, broker.ID(), err)
		}
		for _, p := range asked[broker] {
			b := resp.GetBlock(name, p)
			if b == nil {
				return nil, fmt.Errorf("offsets of %s: no answer for partition %d", name, p)
			}
			if !errors.Is(b.Err, sarama.ErrNoError) {
				return nil, fmt.Errorf("offsets of %s/%d: %w", name, p, b.Err)
			}
			offsets[p] = b.Offset
		}
	}
	return offsets, nil
}
