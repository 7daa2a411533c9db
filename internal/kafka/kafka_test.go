package kafka

import (
	"testing"

	"github.com/IBM/sarama"
)

// The configuration behind exactly once: an idempotent producer, a new
// group starting at the oldest click, and a rebalance timeout below the
// read timeout (sarama waits for a JoinGroup answer only its read
// timeout: see docs/upstream.md).
func TestSaramaConfigForExactCounts(t *testing.T) {
	c := New([]string{"localhost:9092"}, 1, 10, nil).Sarama()
	if !c.Producer.Idempotent || c.Producer.RequiredAcks != sarama.WaitForAll || c.Net.MaxOpenRequests != 1 || c.Producer.Retry.Max < 1 {
		t.Errorf("producer is not idempotent: idempotent=%v acks=%v in-flight=%d retries=%d",
			c.Producer.Idempotent, c.Producer.RequiredAcks, c.Net.MaxOpenRequests, c.Producer.Retry.Max)
	}
	if c.Consumer.Offsets.Initial != sarama.OffsetOldest {
		t.Errorf("a new group starts at %d, want the oldest offset", c.Consumer.Offsets.Initial)
	}
	if c.Consumer.Group.Rebalance.Timeout >= c.Net.ReadTimeout {
		t.Errorf("rebalance timeout %v is not below the read timeout %v: a JoinGroup answer could time out", c.Consumer.Group.Rebalance.Timeout, c.Net.ReadTimeout)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("sarama rejects the configuration: %v", err)
	}
}
