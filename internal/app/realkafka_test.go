package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/kafka"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The tests of what only a real Kafka cluster can show: brokers killed
// while clicks counts, two of three down, the whole cluster stopped. They
// run on the cluster `make start` started (make test-kafka), and stop and
// start its brokers with cluster/kafka.sh where it runs as JVM processes,
// or with docker compose where it runs from docker-compose.yml.

const clusterScript = "../../cluster/kafka.sh"

// realCluster is the cluster of KAFKA_BROKERS with the means to stop, kill
// and start its brokers, whose IDs are 1, 2 and 3 (on :9092, :9093, :9094).
type realCluster struct {
	t       *testing.T
	brokers []string
	docker  string // docker's path where docker compose runs the cluster, else ""
}

// makeStartBrokers are the brokers of make start: docker-compose.yml's and
// cluster/kafka.sh's (cluster/files_test.go checks they are these).
const makeStartBrokers = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"

// needRealCluster returns make start's cluster, or skips the test where
// KAFKA_BROKERS does not name it. It fails where the cluster is named but
// there is no way to stop its brokers.
func needRealCluster(t *testing.T) *realCluster {
	t.Helper()
	k := kafkaBrokers(t)
	if k == "" {
		t.Skip("KAFKA_BROKERS is not set; run `make start` and `make test-kafka` to test against real Kafka")
	}
	if k != makeStartBrokers {
		t.Skipf("KAFKA_BROKERS=%s is not the cluster of make start (%s), whose brokers this test stops", k, makeStartBrokers)
	}
	c := &realCluster{t: t, brokers: strings.Split(makeStartBrokers, ",")}
	out, err := exec.Command(clusterScript, "status").CombinedOutput()
	if err != nil {
		docker, lerr := exec.LookPath("docker")
		if lerr != nil || exec.Command(docker, "info").Run() != nil {
			t.Fatalf("KAFKA_BROKERS is make start's cluster, but cluster/kafka.sh does not run it (%v: %s) and no Docker engine answers", err, out)
		}
		c.docker = docker
	}
	// Whatever happens, every broker is up again for the tests after this.
	t.Cleanup(c.startAll)
	return c
}

func (c *realCluster) run(args ...string) {
	c.t.Helper()
	var cmd *exec.Cmd
	if c.docker != "" {
		cmd = exec.Command(c.docker, append([]string{"compose", "-f", "../../docker-compose.yml"}, args...)...)
	} else {
		cmd = exec.Command(clusterScript, args...)
	}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	c.t.Logf("%s (%s)", strings.Join(cmd.Args[1:], " "), time.Since(start).Round(100*time.Millisecond))
}

// kill sends the brokers of ids SIGKILL.
func (c *realCluster) kill(ids ...int32) {
	c.run(c.brokerArgs("kill", ids)...)
}

// start starts the brokers of ids again on their data and waits until the
// cluster lists them.
func (c *realCluster) start(ids ...int32) {
	c.run(c.brokerArgs("start", ids)...)
}

// brokerArgs are the arguments of docker compose or kafka.sh that do what
// to the brokers of ids.
func (c *realCluster) brokerArgs(what string, ids []int32) []string {
	var args []string
	switch {
	case c.docker == "":
		args = []string{"broker", what}
	case what == "start":
		args = []string{"up", "-d", "--wait"}
	default:
		args = []string{what}
	}
	for _, id := range ids {
		if c.docker != "" {
			args = append(args, fmt.Sprintf("kafka%d", id))
		} else {
			args = append(args, fmt.Sprint(id))
		}
	}
	return args
}

// stopAll stops every broker cleanly, keeping their data.
func (c *realCluster) stopAll() {
	c.run("stop") // the same in docker compose and kafka.sh
}

// startAll starts whatever broker is down and waits until all three are
// listed.
func (c *realCluster) startAll() {
	if c.docker != "" {
		c.run("up", "-d", "--wait")
		return
	}
	c.run("resume")
}

// client returns a sarama client of the cluster, closed when the test ends.
func (c *realCluster) client() sarama.Client {
	c.t.Helper()
	client, err := sarama.NewClient(c.brokers, sarama.NewConfig())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { client.Close() })
	return client
}

// Brokers are killed (SIGKILL) under load and started again: first the
// group's coordinator, then the leader of user-0's partition of the
// clicks. The program counts on while each is down. Then two of the three
// are killed: with min.insync.replicas=2 a write is refused, not taken and
// lost, and counting resumes when they are back. In the end no click the
// cluster acknowledged is lost and every click in the topic is counted
// once by the same, never restarted, instance.
func TestKafkaBrokersKilled(t *testing.T) {
	c := needRealCluster(t)
	all := strings.Join(c.brokers, ",")
	counter := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", all, "-emit=false")
	emitter := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-brokers", all, "-process=false", "-serve=false", "-interval", "2ms")
	writer := clickstest.StartAckedWriter(t, c.brokers)
	client := c.client()
	counter.WaitForClicks("user-0", 0, 60*time.Second)

	victims := []struct {
		what string
		id   func() int32
	}{
		{"the coordinator of " + string(clicks.Group), func() int32 {
			b, err := client.Coordinator(string(clicks.Group))
			if err != nil {
				t.Fatalf("coordinator of %s: %v", clicks.Group, err)
			}
			return b.ID()
		}},
		{"the leader of user-0's partition", func() int32 {
			p := clicks.KeyPartition("user-0", clicks.DefaultPartitions)
			if err := client.RefreshMetadata(string(clicks.Topic)); err != nil {
				t.Fatal(err)
			}
			b, err := client.Leader(string(clicks.Topic), p)
			if err != nil {
				t.Fatalf("leader of %s/%d: %v", clicks.Topic, p, err)
			}
			return b.ID()
		}},
	}
	for _, v := range victims {
		id := v.id()
		t.Logf("killing broker %d, %s", id, v.what)
		at := counter.Clicks("user-0")
		c.kill(id)
		// Counting goes on with one broker down (the emitter clicks for
		// user-0 50 times a second), and after it is back.
		down := counter.WaitForClicks("user-0", at+250, 120*time.Second)
		c.start(id)
		counter.WaitForClicks("user-0", down+100, 120*time.Second)
	}

	// Two of three down: the one left, though it leads user-0's
	// partition, takes no write there (min.insync.replicas=2).
	part := clicks.KeyPartition("user-0", clicks.DefaultPartitions)
	survivor := victims[1].id()
	var others []int32
	for id := int32(1); id <= 3; id++ {
		if id != survivor {
			others = append(others, id)
		}
	}
	c.kill(others...)
	probe, err := kgo.NewClient(kgo.SeedBrokers(c.brokers[survivor-1]), kgo.DisableIdempotentWrite(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	key := clickstest.Keys(1)[0]
	res := probe.ProduceSync(context.Background(), &kgo.Record{Topic: string(clicks.Topic), Partition: part, Key: []byte(key), Value: []byte("a click with two brokers down")})
	probe.Close()
	if err := res.FirstErr(); err == nil {
		t.Errorf("a click was acknowledged by broker %d with the two others down (min.insync.replicas=2): %v", survivor, res[0].Record)
	} else {
		t.Logf("with brokers %v down, broker %d refuses a write to %s/%d: %v", others, survivor, clicks.Topic, part, err)
	}
	atDown := counter.Clicks("user-0")
	c.start(others...)
	counter.WaitForClicks("user-0", atDown+100, 120*time.Second)

	emitter.Stop() // the topic must stop growing before it is compared
	writer.Stop()
	matchTopic(t, c.brokers, counter)
	writer.CheckAckedInTopic(t, clickstest.RecordsPerKey(t, c.brokers, string(clicks.Topic)))
	if code, body, err := counter.Get("/-/ready"); err != nil || code != http.StatusOK {
		t.Errorf("/-/ready: %d %s (%v), want 200 once the brokers are back\n%s", code, body, err, counter.LastLines(30))
	}
}

// The whole cluster is stopped while the program runs (emitter, processor
// and view in one process, another client writing too): the program does
// not exit, says on /-/ready that the brokers do not answer, and when the
// cluster is back it goes on by itself; every click is counted once.
func TestKafkaClusterStopped(t *testing.T) {
	c := needRealCluster(t)
	all := strings.Join(c.brokers, ",")
	dir := t.TempDir()
	app := clickstest.StartProcess(t, "-data", dir, "-brokers", all, "-listen", "127.0.0.1:0", "-interval", "5ms", "-quiet")
	app.WaitForReadiness(http.StatusOK, 60*time.Second)
	writer := clickstest.StartAckedWriter(t, c.brokers)

	c.stopAll()
	stopped := time.Now()
	// The processor may say it stopped first; the brokers' probe, once a
	// second, says they do not answer within its 2 s timeout.
	var parts map[string]string
	clickstest.WaitFor(t, 30*time.Second, "/-/ready to answer 503 with the brokers not answering", func() (bool, string) {
		var code int
		code, parts = app.Readiness()
		return code == http.StatusServiceUnavailable && strings.HasPrefix(parts["brokers"], "not answering"), fmt.Sprintf("%d %v", code, parts)
	})
	t.Logf("503 %s after the cluster stopped: %v", time.Since(stopped).Round(100*time.Millisecond), parts)
	select {
	case <-app.Done():
		t.Fatalf("the program exited (%v) while the cluster was stopped:\n%s", app.Err(), app.LastLines(30))
	default:
	}
	c.startAll()
	app.WaitForReadiness(http.StatusOK, 120*time.Second)

	writer.Stop()
	app.Stop()
	checkExactlyOnce(t, "-data", dir, "-brokers", all)
	writer.CheckAckedInTopic(t, clickstest.RecordsPerKey(t, c.brokers, string(clicks.Topic)))
}

// resetRealCluster deletes topics and the processor group from the real
// cluster at brokers and waits until every broker has forgotten them, for
// a test or benchmark that needs the cluster as new (the topics' counts,
// the group's commits). The group must have no members.
func resetRealCluster(tb testing.TB, brokers []string, topics ...string) {
	tb.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, sarama.NewConfig())
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	existing, err := admin.ListTopics()
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range topics {
		if _, ok := existing[name]; ok {
			if err := admin.DeleteTopic(name); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				tb.Fatalf("delete topic %s: %v", name, err)
			}
		}
	}
	// Members of a stopped instance leave, or time out.
	clickstest.WaitFor(tb, 60*time.Second, fmt.Sprintf("the group %s to be deleted", clicks.Group), func() (bool, string) {
		err := admin.DeleteConsumerGroup(string(clicks.Group))
		return err == nil || errors.Is(err, sarama.ErrGroupIDNotFound), fmt.Sprint(err)
	})
	client, err := sarama.NewClient(brokers, sarama.NewConfig())
	if err != nil {
		tb.Fatal(err)
	}
	defer client.Close()
	if err := kafka.WaitForTopicsGone(client, topics...); err != nil {
		tb.Fatal(err)
	}
}
