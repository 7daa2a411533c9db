package app

import (
	"os"
	"strings"
	"testing"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"

	"github.com/IBM/sarama"
)

// The tests that can run against a real Kafka cluster take its brokers
// from KAFKA_BROKERS, as `make test-kafka` sets it for the cluster of
// docker-compose.yml (.github/workflows/kafka.yml runs them there). Without
// it they start an embedded broker of their own, or, where only a real
// cluster makes sense, skip and say so: no machine without Docker can
// start one, CI's included.

// kafkaBrokers returns KAFKA_BROKERS: the real cluster to test against,
// comma-separated, or "".
func kafkaBrokers(t testing.TB) string {
	k := strings.TrimSpace(os.Getenv("KAFKA_BROKERS"))
	if k != "" {
		t.Logf("against the Kafka cluster at %s (KAFKA_BROKERS)", k)
	}
	return k
}

// clusterForTest returns the brokers a test's programs use,
// comma-separated: the real cluster of KAFKA_BROKERS, or else an embedded
// broker in a process of its own, started here and returned. It keeps
// every click (-broker-keep-mib 0): the tests compare the counts with all
// that was written, and a soak writes more than the default keeps.
func clusterForTest(t *testing.T) (string, *clickstest.Process) {
	t.Helper()
	if k := kafkaBrokers(t); k != "" {
		return k, nil
	}
	p := clickstest.StartProcess(t, "-data", t.TempDir(), "-broker-listen", "127.0.0.1:0", "-broker-keep-mib", "0", "-emit=false", "-process=false", "-serve=false")
	return p.WaitForBrokers()[0], p
}

// On the real cluster the topics clicks creates have, as Kafka describes
// them, the replication it chooses for the cluster's size (3 replicas,
// min.insync.replicas=2 on make start's three brokers), all replicas in
// sync, ten partitions each, and the settings that keep data.
func TestKafkaTopicsReplicated(t *testing.T) {
	k := kafkaBrokers(t)
	if k == "" {
		t.Skip("KAFKA_BROKERS is not set; run `make restart` and `make test-kafka` to test against real Kafka")
	}
	in := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", k, "-emit=false", "-process=false")
	client, err := sarama.NewClient(in.Brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	brokers := len(client.Brokers())
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	replication, minInsync, err := replicationFor(0, 0, brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d brokers: replication %d, min.insync.replicas %d", brokers, replication, minInsync)
	checkReplication(t, in.Brokers, replication, minInsync)
	checkTopicSettings(t, in.Brokers, clicks.DefaultPartitions, int16(replication))
}
