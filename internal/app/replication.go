package app

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/IBM/sarama"
)

// The replication of the topics clicks creates. On a cluster of three or
// more brokers each partition has three replicas and min.insync.replicas
// is 2: with the producers' acks from all in-sync replicas (kafka.New), a
// click is acknowledged only once two brokers have it, and one broker may
// be down without stopping writes. On one broker: one replica, as the
// embedded broker always had.

// defaultReplication is the replication factor clicks chooses where the
// cluster has that many brokers.
const defaultReplication = 3

// replicationFor returns the replication factor and min.insync.replicas
// of the topics to create on a cluster of brokers brokers, from what the
// flags asked (0: choose).
func replicationFor(replication, minInsync, brokers int) (int, int, error) {
	chosen := replication == 0
	if chosen {
		replication = max(1, min(defaultReplication, brokers))
	}
	if minInsync == 0 {
		minInsync = max(1, min(2, replication-1))
	}
	if minInsync > replication {
		how := "-replication"
		if chosen {
			how = fmt.Sprintf("the replication chosen for %d brokers", brokers)
		}
		return 0, 0, fmt.Errorf("-min-insync %d is above %s, %d: no write could ever be acknowledged; lower -min-insync or raise -replication", minInsync, how, replication)
	}
	return replication, minInsync, nil
}

// chooseReplication sets the replication of the topics clicks creates
// from the flags and the brokers the cluster has now.
func (prog *program) chooseReplication(client sarama.Client) error {
	replication, minInsync, err := replicationFor(prog.cfg.replication, prog.cfg.minInsync, len(client.Brokers()))
	if err != nil {
		return err
	}
	prog.k.Replication, prog.k.MinInsync = replication, minInsync
	if brokers := len(client.Brokers()); prog.cfg.replication == 0 && brokers > 1 && replication < defaultReplication {
		prog.logger.Warn("fewer brokers than replicas clicks would choose: topics created now get fewer replicas, and an acknowledged click may be on one broker only; give -replication 3 to refuse instead",
			"brokers", brokers, "replication", replication, "min_insync", minInsync)
	}
	return nil
}

// tooFewBrokers turns the cluster's refusal to create a topic with more
// replicas than it has brokers into an error that says what to change.
// Only a topic to create needs them: existing topics keep theirs, and a
// cluster with a broker down still runs the program.
func tooFewBrokers(err error, replication int, client sarama.Client) error {
	if !errors.Is(err, sarama.ErrInvalidReplicationFactor) {
		return err
	}
	var addrs []string
	for _, b := range client.Brokers() {
		addrs = append(addrs, b.Addr())
	}
	slices.Sort(addrs)
	return fmt.Errorf("-replication %d: the cluster has %d broker(s) (%s), fewer than the replicas asked; lower -replication or start more brokers: %w",
		replication, len(addrs), strings.Join(addrs, ","), err)
}
