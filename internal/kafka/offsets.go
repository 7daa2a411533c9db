package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// Offsets asks each partition's leader of topic name for the partition's
// offset at (sarama.OffsetNewest: the next it will write, the log end;
// sarama.OffsetOldest: the log start), one request per broker rather than
// one per partition.
//
// A leader that is changing answers for a while with an error that asks to
// try again: on Kafka, right after a topic is created or a broker went
// down. Offsets asks again, with fresh metadata, for up to
// leaderChangeWait.
func Offsets(client sarama.Client, name string, at int64) (map[int32]int64, error) {
	deadline := time.Now().Add(leaderChangeWait)
	for {
		offsets, err := offsetsOnce(client, name, at)
		var changing leaderChangingError
		if err == nil || !errors.As(err, &changing) || time.Now().After(deadline) {
			return offsets, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaderChangeWait is how long a request is repeated while a partition's
// leader changes: longer than Kafka takes to elect one after a broker is
// lost (its session timeout, 9 s on KRaft, 18 s on ZooKeeper).
const leaderChangeWait = 30 * time.Second

// leaderChangingError is a partition's answer that its leader is not
// settled yet, or not yet known to the broker asked.
type leaderChangingError struct{ error }

func (e leaderChangingError) Unwrap() error { return e.error }

// leaderChanging tells the errors of a partition whose leader is not
// settled yet, or not yet known to the broker asked.
func leaderChanging(err error) bool {
	for _, kerr := range []sarama.KError{
		sarama.ErrNotLeaderForPartition, sarama.ErrLeaderNotAvailable, sarama.ErrUnknownTopicOrPartition,
		sarama.ErrOffsetNotAvailable, sarama.ErrFencedLeaderEpoch, sarama.ErrUnknownLeaderEpoch,
		sarama.ErrRequestTimedOut, sarama.ErrNotController,
	} {
		if errors.Is(err, kerr) {
			return true
		}
	}
	return false
}

func offsetsOnce(client sarama.Client, name string, at int64) (map[int32]int64, error) {
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
				err := fmt.Errorf("offsets of %s/%d: %w", name, p, b.Err)
				if leaderChanging(b.Err) {
					err = leaderChangingError{err}
				}
				return nil, err
			}
			offsets[p] = b.Offset
		}
	}
	return offsets, nil
}
