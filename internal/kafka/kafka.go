// Package kafka is how clicks talks to a Kafka cluster: one sarama
// configuration (idempotent producers, the oldest offset for a new group),
// connecting, the topics and their settings, and the options of goka's
// emitter, processor and view (options.go).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// StreamRetention keeps clicks long enough to count them after the
// processor was down for a while; goka's default of 1 hour silently loses
// every click sent during a longer outage.
const StreamRetention = 7 * 24 * time.Hour

// Config holds what every goka part needs to reach the cluster: the
// broker list and one sarama configuration, copied for each client so that
// no two clients share (and race on) a *sarama.Config.
type Config struct {
	Brokers     []string
	Replication int // of the topics clicks creates
	MinInsync   int // their min.insync.replicas; 0: the brokers' default
	Partitions  int // of the topics clicks creates where none exists
	// PartitionsGiven says Partitions was asked for (-partitions): then an
	// existing topic with another count is an error, not followed.
	PartitionsGiven bool
	// UnfinishedBound is how many unfinished writes the processor's
	// record cache lets goka have; 0: UnfinishedBound.
	UnfinishedBound int
	base            sarama.Config
	logger          *slog.Logger
}

// New returns the configuration to reach brokers with, for topics of
// replication and partitions.
func New(brokers []string, replication, partitions int, logger *slog.Logger) *Config {
	c := goka.DefaultConfig()
	// Count every click in the topic, also those sent before the group
	// first committed an offset. goka's default (newest) drops them.
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	// An idempotent producer: a retry after a lost acknowledgement never
	// writes a click twice. It needs acks from all in-sync replicas and
	// one request in flight per connection.
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Net.MaxOpenRequests = 1
	// sarama waits for a JoinGroup answer only Net.ReadTimeout (30s), but
	// the coordinator may hold it for the rebalance timeout (sarama's
	// default: 60s) while it waits for a member that died during a
	// rebalance. The processor then fails with "i/o timeout". A rebalance
	// timeout below the read timeout keeps the answer in time.
	c.Consumer.Group.Rebalance.Timeout = 20 * time.Second
	// Send as soon as there is something to send, instead of goka's
	// 100 ms flush interval, which the emitter and the processor's table
	// writes each added to a click's way to the view (p50 200 ms). Under
	// load the producer still batches: with one request in flight per
	// connection, what arrives meanwhile goes out together in the next.
	c.Producer.Flush.Frequency = 0
	c.Producer.Flush.Bytes = 0
	// No compression: the values are a 40-byte JSON and a 30-byte time,
	// on which snappy (goka's default) saved little and cost CPU on every
	// produce and fetch.
	c.Producer.Compression = sarama.CompressionNone
	// Fetch at most 128 KiB per partition instead of 1 MiB: a recovering
	// table fetches all its partitions at once, and each fetch is held
	// decoded while it is applied; a view-only instance's peak RSS fell
	// by more than half at the same recovery speed (docs/performance.md,
	// "Defaults the numbers chose").
	c.Consumer.Fetch.Default = 128 << 10
	return &Config{Brokers: brokers, Replication: replication, Partitions: partitions, base: *c, logger: logger}
}

// Sarama returns a fresh copy of the sarama configuration.
func (k *Config) Sarama() *sarama.Config {
	c := k.base
	return &c
}

// topicManagerConfig makes goka create topics the way EnsureTopics does,
// should it ever need to create one itself.
func (k *Config) topicManagerConfig() *goka.TopicManagerConfig {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = k.Replication
	tmc.Stream.Replication = k.Replication
	tmc.Stream.Retention = StreamRetention
	tmc.MismatchBehavior = goka.TMConfigMismatchBehaviorIgnore
	return tmc
}

func (k *Config) TopicManagerBuilder() goka.TopicManagerBuilder {
	return goka.TopicManagerBuilderWithConfig(k.Sarama(), k.topicManagerConfig())
}

// Connect returns a client once the brokers answer, retrying until timeout
// so that a broker that is still starting (docker compose) is waited for.
func (k *Config) Connect(ctx context.Context, timeout time.Duration) (sarama.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs := strings.Join(k.Brokers, ",")
	deadline, _ := ctx.Deadline()
	for attempt := 0; ; attempt++ {
		cfg := k.Sarama()
		cfg.ClientID = "clicks-admin"
		// One quick try per round: this loop retries until the deadline,
		// which sarama's own retries would overshoot.
		cfg.Metadata.Retry.Max = 0
		round := max(min(5*time.Second, time.Until(deadline)), 100*time.Millisecond)
		cfg.Net.DialTimeout, cfg.Net.ReadTimeout, cfg.Net.WriteTimeout = round, round, round
		client, err := sarama.NewClient(k.Brokers, cfg)
		if err == nil {
			return client, nil
		}
		if attempt == 0 {
			k.logger.Info("waiting for Kafka", "brokers", addrs, "timeout", timeout, "err", err)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("cannot reach Kafka at %s within %v: %w", addrs, timeout, err)
			}
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Topics names the topics of a goka group: its input stream, whose
// partitions all share, its table and its loop topic.
type Topics struct{ Stream, Table, Loop string }

// EnsureTopics creates the click stream, the group table and the loop
// topic if they are missing, with settings that keep data: clicks and
// forwarded clicks for StreamRetention, the table compacted and never aged
// out. It returns the number of partitions they all have. Every check
// (partitions, co-partitioning, replication) runs before the first topic
// is created: a start that fails creates nothing.
func (k *Config) EnsureTopics(client sarama.Client, topics Topics) (int32, error) {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return 0, fmt.Errorf("create cluster admin: %w", err)
	}
	// Not admin.Close: that would close the shared client.
	existing, err := admin.ListTopics()
	if err != nil {
		return 0, fmt.Errorf("list topics: %w", err)
	}
	counts := make(map[string]int32, len(existing))
	for name, d := range existing {
		counts[name] = d.NumPartitions
	}
	plan, err := PlanTopics(topics, counts, int32(k.Partitions), k.PartitionsGiven)
	if err != nil {
		return 0, err
	}
	for _, name := range []string{topics.Stream, topics.Table, topics.Loop} {
		if d, ok := existing[name]; ok && int(d.ReplicationFactor) < k.Replication {
			k.logger.Warn("topic has fewer replicas than asked: clicks does not change the replication of an existing topic", "topic", name, "replication", d.ReplicationFactor, "asked", k.Replication)
		}
	}
	if len(plan.Create) > 0 && k.Replication > len(client.Brokers()) {
		return 0, fmt.Errorf("create topics %s (%d partitions, replication %d): %w", strings.Join(plan.Create, ", "), plan.Partitions, k.Replication, sarama.ErrInvalidReplicationFactor)
	}
	retention := strconv.FormatInt(StreamRetention.Milliseconds(), 10)
	configs := map[string]map[string]string{
		topics.Stream: {"cleanup.policy": "delete", "retention.ms": retention},
		topics.Table:  {"cleanup.policy": "compact", "retention.ms": "-1"},
		topics.Loop:   {"cleanup.policy": "delete", "retention.ms": retention},
	}
	for _, name := range plan.Create {
		c := configs[name]
		if k.MinInsync > 0 {
			c["min.insync.replicas"] = strconv.Itoa(k.MinInsync)
		}
		detail := &sarama.TopicDetail{
			NumPartitions:     plan.Partitions,
			ReplicationFactor: int16(k.Replication),
			ConfigEntries:     map[string]*string{},
		}
		for key, v := range c {
			detail.ConfigEntries[key] = &v
		}
		err := admin.CreateTopic(name, detail, false)
		switch {
		case errors.Is(err, sarama.ErrTopicAlreadyExists):
			// Another instance created it at the same moment.
		case err != nil:
			return 0, fmt.Errorf("create topic %s (%d partitions, replication %d): %w", name, plan.Partitions, k.Replication, err)
		default:
			k.logger.Info("created topic", "topic", name, "partitions", plan.Partitions, "replication", k.Replication, "min_insync", c["min.insync.replicas"])
		}
	}
	if err := waitForTopics(client, []string{topics.Stream, topics.Table, topics.Loop}); err != nil {
		return 0, err
	}
	return plan.Partitions, nil
}

// waitForTopics polls metadata until every topic has leaders for all its
// partitions, as every broker tells it: on Kafka each broker learns of a
// topic just created on its own, and goka asks whichever broker it picks
// (its processor failed at start with "Error getting config for topic
// mini-group-table: ... does not exist on this broker" on Kafka 3.9).
func waitForTopics(client sarama.Client, topics []string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := client.RefreshMetadata(topics...)
		if err == nil {
			err = everyBrokerKnows(client, topics)
		}
		if err == nil {
			for _, t := range topics {
				var ps []int32
				if ps, err = client.Partitions(t); err != nil {
					break
				}
				for _, p := range ps {
					if _, err = client.Leader(t, p); err != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v not ready: %w", topics, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// everyBrokerKnows returns an error unless every broker of client that
// answers tells topics in its metadata, each partition with a leader. A
// broker that does not answer is left out: a broker down must not stop a
// start.
func everyBrokerKnows(client sarama.Client, topics []string) error {
	return eachBrokerTells(client, topics, func(id int32, t *sarama.TopicMetadata) error {
		if t.Err != sarama.ErrNoError {
			return fmt.Errorf("broker %d on %s: %w", id, t.Name, t.Err)
		}
		for _, p := range t.Partitions {
			if p.Err != sarama.ErrNoError && p.Err != sarama.ErrReplicaNotAvailable {
				return fmt.Errorf("broker %d on %s/%d: %w", id, t.Name, p.ID, p.Err)
			}
		}
		return nil
	})
}

// eachBrokerTells asks every broker of client that answers for the
// metadata of topics and passes each topic's to check, stopping at its
// first error.
func eachBrokerTells(client sarama.Client, topics []string, check func(broker int32, t *sarama.TopicMetadata) error) error {
	for _, b := range client.Brokers() {
		if ok, _ := b.Connected(); !ok {
			if err := b.Open(client.Config()); err != nil && !errors.Is(err, sarama.ErrAlreadyConnected) {
				continue
			}
		}
		resp, err := b.GetMetadata(&sarama.MetadataRequest{Version: 1, Topics: topics})
		if err != nil {
			continue // down, or gone since the client listed it
		}
		for _, t := range resp.Topics {
			if err := check(b.ID(), t); err != nil {
				return err
			}
		}
	}
	return nil
}

// WaitForTopicsGone waits, for up to a minute, until no broker that
// answers knows topics any more: Kafka deletes a topic broker by broker,
// and one deleted is created again only once all have let it go.
func WaitForTopicsGone(client sarama.Client, topics ...string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := eachBrokerTells(client, topics, func(id int32, t *sarama.TopicMetadata) error {
			if t.Err != sarama.ErrUnknownTopicOrPartition {
				return fmt.Errorf("broker %d still knows %s", id, t.Name)
			}
			return nil
		})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deleted topics still there after a minute: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitForTopics waits until every broker tells topics, each partition
// with a leader, for up to 10 s: a topic just created is not there at once
// on every broker of a Kafka cluster.
func WaitForTopics(client sarama.Client, topics ...string) error {
	return waitForTopics(client, topics)
}

// TopicID returns the ID the cluster gave topic when it was created, which
// changes when the topic is deleted and created again. It is "" where the
// brokers are older than Kafka 2.8 and do not tell topic IDs.
func (k *Config) TopicID(name string) (id string, err error) {
	// Metadata v10 (Kafka 2.8) is the first to carry topic IDs, and sarama
	// only sends it when its configured version is at least 2.8. Only
	// this client asks for so new a version; with an older broker sarama
	// falls back to what the broker supports, and the ID stays empty.
	cfg := k.Sarama()
	cfg.ClientID = "clicks-admin"
	cfg.Version = sarama.V2_8_0_0
	client, err := sarama.NewClient(k.Brokers, cfg)
	if err != nil {
		return "", fmt.Errorf("connect to ask for the ID of %s: %w", name, err)
	}
	defer func() {
		if cerr := client.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close client: %w", cerr)
		}
	}()
	broker, err := client.Controller()
	if err != nil {
		return "", fmt.Errorf("find a broker to ask for the ID of %s: %w", name, err)
	}
	// EnsureTopics waited until every broker knew the topics.
	resp, err := broker.GetMetadata(sarama.NewMetadataRequest(sarama.V2_8_0_0, []string{name}))
	if err != nil {
		k.logger.Warn("the brokers do not tell topic IDs: a re-created topic will not be noticed", "topic", name, "err", err)
		return "", nil
	}
	return topicIDIn(resp, name)
}

// topicIDIn returns the ID of topic name in a metadata answer.
func topicIDIn(resp *sarama.MetadataResponse, name string) (string, error) {
	for _, t := range resp.Topics {
		if t.Name != name {
			continue
		}
		if t.Err != sarama.ErrNoError {
			return "", fmt.Errorf("metadata of %s: %w", name, t.Err)
		}
		if t.Uuid == (sarama.Uuid{}) {
			return "", nil
		}
		return t.Uuid.String(), nil
	}
	return "", fmt.Errorf("metadata of %s: topic missing from the answer", name)
}
