package main

import (
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// listTopics returns an admin client of brokers, closed when the test
// ends, and the topics it lists.
func listTopics(t *testing.T, brokers []string) (sarama.ClusterAdmin, map[string]sarama.TopicDetail) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	topics, err := admin.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	return admin, topics
}

// The topics clicks creates keep data: clicks for 7 days, the table
// compacted and never aged out.
func TestTopicsAreCreatedWithSettingsThatKeepData(t *testing.T) {
	in := startClicks(t, nil, "-data", t.TempDir(), "-emit=false", "-process=false", "-serve=false")
	admin, topics := listTopics(t, in.brokers)
	want := map[string]map[string]string{
		string(topic): {"cleanup.policy": "delete", "retention.ms": "604800000"},
		string(table): {"cleanup.policy": "compact", "retention.ms": "-1"},
		string(loop):  {"cleanup.policy": "delete", "retention.ms": "604800000"},
	}
	for name, configs := range want {
		d, ok := topics[name]
		if !ok {
			t.Fatalf("topic %s was not created; topics: %v", name, topics)
		}
		if d.NumPartitions != defaultPartitions || d.ReplicationFactor != 1 {
			t.Errorf("%s: %d partitions, replication %d; want %d and 1", name, d.NumPartitions, d.ReplicationFactor, defaultPartitions)
		}
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range entries {
			got[e.Name] = e.Value
		}
		for k, v := range configs {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got[k], v)
			}
		}
	}
}

// -partitions sets the partitions of the topics; the program counts on
// them as on the default ten, and finds a key's partition among them.
func TestPartitionsFlag(t *testing.T) {
	in := startClicks(t, nil, "-data", t.TempDir(), "-emit=false", "-partitions", "3")
	_, topics := listTopics(t, in.brokers)
	for _, name := range []string{string(topic), string(table), string(loop)} {
		if d := topics[name]; d.NumPartitions != 3 {
			t.Errorf("%s has %d partitions, want 3", name, d.NumPartitions)
		}
	}
	key := testKeys(1)[0]
	sendClicks(t, in.brokers, map[string]int{key: 4})
	writers{t: t, brokers: in.brokers}.franzSend([]string{key}, (keyPartition(key, 3)+1)%3)
	in.waitForBody("/"+key, `{"Clicks":5}`, 30*time.Second)
}

// A click topic deleted and created again starts its offsets at zero: its
// clicks are counted on top of the counts so far, not skipped as replays.
func TestRecreatedTopicIsCounted(t *testing.T) {
	dir := t.TempDir()
	key := testKeys(1)[0]
	first := startClicks(t, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.brokers, map[string]int{key: 5})
	first.waitForBody("/"+key, `{"Clicks":5}`, 30*time.Second)
	first.stop()

	broker := startClicks(t, nil, "-data", dir, "-emit=false", "-process=false", "-serve=false")
	admin, err := sarama.NewClusterAdmin(broker.brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteTopic(string(topic)); err != nil {
		t.Fatalf("delete %s: %v", topic, err)
	}
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}
	broker.stop()

	second := startClicks(t, nil, "-data", dir, "-emit=false")
	if !strings.Contains(second.stderr.String(), `msg="created topic" topic=user-clicks`) {
		t.Fatalf("user-clicks was not created again:\n%s", second.stderr)
	}
	sendClicks(t, second.brokers, map[string]int{key: 2}) // offsets 0 and 1 again
	second.waitForBody("/"+key, `{"Clicks":7}`, 30*time.Second)
}

func TestSaramaConfigForExactCounts(t *testing.T) {
	c := newKafka([]string{"localhost:9092"}, 1, nil).config()
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
