package main

import (
	"testing"

	"github.com/IBM/sarama"
)

// The topics clicks creates keep data: clicks for 7 days, the table
// compacted and never aged out.
func TestTopicsAreCreatedWithSettingsThatKeepData(t *testing.T) {
	in := startClicks(t, nil, "-data", t.TempDir(), "-emit=false", "-process=false", "-serve=false")
	admin, err := sarama.NewClusterAdmin(in.brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topics, err := admin.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		string(topic): {"cleanup.policy": "delete", "retention.ms": "604800000"},
		string(table): {"cleanup.policy": "compact", "retention.ms": "-1"},
	}
	for name, configs := range want {
		d, ok := topics[name]
		if !ok {
			t.Fatalf("topic %s was not created; topics: %v", name, topics)
		}
		if d.NumPartitions != partitions || d.ReplicationFactor != 1 {
			t.Errorf("%s: %d partitions, replication %d; want %d and 1", name, d.NumPartitions, d.ReplicationFactor, partitions)
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
