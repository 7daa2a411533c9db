package kafka

import (
	"errors"
	"testing"

	"github.com/IBM/sarama"
)

// offsetsBroker is a mock broker that leads partition 0 of topic "t" and
// answers the ListOffsets requests with answers, in turn.
func offsetsBroker(t *testing.T, answers ...any) sarama.Client {
	t.Helper()
	b := sarama.NewMockBroker(t, 1)
	t.Cleanup(b.Close)
	b.SetHandlerByMap(map[string]sarama.MockResponse{
		"MetadataRequest": sarama.NewMockMetadataResponse(t).SetBroker(b.Addr(), b.BrokerID()).SetLeader("t", 0, b.BrokerID()),
		"OffsetRequest":   sarama.NewMockSequence(answers...),
	})
	cfg := sarama.NewConfig()
	cfg.ApiVersionsRequest = false // the mock broker does not answer it
	client, err := sarama.NewClient([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// offsetsError is a ListOffsets answer with kerr for partition 0 of "t".
func offsetsError(kerr sarama.KError) sarama.MockResponse {
	resp := &sarama.OffsetResponse{Version: 1}
	resp.AddTopicPartition("t", 0, -1)
	resp.Blocks["t"][0].Err = kerr
	return sarama.NewMockWrapper(resp)
}

// On Kafka a broker asked right after a topic was created, or while a
// leader is elected, answers NOT_LEADER_OR_FOLLOWER (or that the offset is
// not available yet) for a moment: Offsets asks again.
func TestOffsetsAskAgainWhileTheLeaderChanges(t *testing.T) {
	client := offsetsBroker(t,
		offsetsError(sarama.ErrNotLeaderForPartition),
		offsetsError(sarama.ErrOffsetNotAvailable),
		sarama.NewMockOffsetResponse(t).SetOffset("t", 0, sarama.OffsetNewest, 42))
	got, err := Offsets(client, "t", sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 42 {
		t.Fatalf("offsets %v, want partition 0 at 42", got)
	}
}

// Any other error ends Offsets at once.
func TestOffsetsOtherErrorsAreReturned(t *testing.T) {
	client := offsetsBroker(t, offsetsError(sarama.ErrTopicAuthorizationFailed))
	_, err := Offsets(client, "t", sarama.OffsetNewest)
	if !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
		t.Fatalf("Offsets: %v, want the authorization error", err)
	}
}
