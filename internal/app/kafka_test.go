package app

import (
	"strings"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"

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
	t.Parallel()
	in := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-emit=false", "-process=false", "-serve=false")
	checkTopicSettings(t, in.Brokers, clicks.DefaultPartitions, 1)
}

// checkTopicSettings checks the topics clicks creates as the cluster
// describes them: their partitions, replicas and settings that keep data.
func checkTopicSettings(t *testing.T, brokers []string, partitions int32, replication int16) {
	t.Helper()
	admin, topics := listTopics(t, brokers)
	want := map[string]map[string]string{
		string(clicks.Topic): {"cleanup.policy": "delete", "retention.ms": "604800000"},
		string(clicks.Table): {"cleanup.policy": "compact", "retention.ms": "-1"},
		string(clicks.Loop):  {"cleanup.policy": "delete", "retention.ms": "604800000"},
	}
	for name, configs := range want {
		d, ok := topics[name]
		if !ok {
			t.Fatalf("topic %s was not created; topics: %v", name, topics)
		}
		if d.NumPartitions != partitions || d.ReplicationFactor != replication {
			t.Errorf("%s: %d partitions, replication %d; want %d and %d", name, d.NumPartitions, d.ReplicationFactor, partitions, replication)
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
	t.Parallel()
	in := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-emit=false", "-partitions", "3")
	_, topics := listTopics(t, in.Brokers)
	for _, name := range []string{string(clicks.Topic), string(clicks.Table), string(clicks.Loop)} {
		if d := topics[name]; d.NumPartitions != 3 {
			t.Errorf("%s has %d partitions, want 3", name, d.NumPartitions)
		}
	}
	key := clickstest.Keys(1)[0]
	sendClicks(t, in.Brokers, map[string]int{key: 4})
	writers{t: t, brokers: in.Brokers}.franzSend([]string{key}, (clicks.KeyPartition(key, 3)+1)%3)
	in.WaitForBody("/"+key, `{"Clicks":5}`, 30*time.Second)
}

// A click topic deleted and created again starts its offsets at zero: its
// clicks are counted on top of the counts so far, not skipped as replays.
func TestRecreatedTopicIsCounted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := clickstest.Keys(1)[0]
	first := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	sendClicks(t, first.Brokers, map[string]int{key: 5})
	first.WaitForBody("/"+key, `{"Clicks":5}`, 30*time.Second)
	first.Stop()

	broker := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false", "-process=false", "-serve=false")
	admin, err := sarama.NewClusterAdmin(broker.Brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteTopic(string(clicks.Topic)); err != nil {
		t.Fatalf("delete %s: %v", clicks.Topic, err)
	}
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}
	broker.Stop()

	second := clickstest.StartInProcess(t, Run, nil, "-data", dir, "-emit=false")
	if !strings.Contains(second.Log(), `msg="created topic" topic=user-clicks`) {
		t.Fatalf("user-clicks was not created again:\n%s", second.Log())
	}
	sendClicks(t, second.Brokers, map[string]int{key: 2}) // offsets 0 and 1 again
	second.WaitForBody("/"+key, `{"Clicks":7}`, 30*time.Second)
}
