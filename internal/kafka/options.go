package kafka

import (
	"clicks/internal/logs"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
)

// The options of the three goka parts, built in one place: each reaches
// the cluster with its own copy of the sarama configuration, creates
// topics as EnsureTopics does and logs through slog; the processor and the
// view keep their local tables where local says.

// EmitterOptions are the emitter's goka options.
func (k *Config) EmitterOptions() []goka.EmitterOption {
	return []goka.EmitterOption{
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(k.Sarama())),
		goka.WithEmitterTopicManagerBuilder(k.TopicManagerBuilder()),
		goka.WithEmitterLogger(logs.Goka{L: k.logger.With("part", "emitter")}),
	}
}

// ProcessorOptions are the processor's goka options. With cacheBatches
// above 0 its writes of table go through a RecordCache with that many
// batches in flight.
func (k *Config) ProcessorOptions(local storage.Builder, table string, cacheBatches int) []goka.ProcessorOption {
	producer := goka.ProducerBuilderWithConfig(k.Sarama())
	if cacheBatches > 0 {
		producer = RecordCacheBuilder(producer, table, cacheBatches, k.UnfinishedBound)
	}
	return []goka.ProcessorOption{
		goka.WithStorageBuilder(local),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(k.Sarama())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(k.Sarama())),
		goka.WithProducerBuilder(producer),
		goka.WithTopicManagerBuilder(k.TopicManagerBuilder()),
		goka.WithLogger(logs.Goka{L: k.logger.With("part", "processor")}),
		// A click is a key: another client may send it without a value
		// (null), which goka would drop unseen by default (NilIgnore),
		// though it is a click in the topic all the same.
		goka.WithNilHandling(goka.NilProcess),
	}
}

// ViewOptions are the view's goka options; every update of the table
// passes through update.
func (k *Config) ViewOptions(local storage.Builder, update goka.UpdateCallback) []goka.ViewOption {
	return []goka.ViewOption{
		goka.WithViewCallback(update),
		goka.WithViewStorageBuilder(local),
		goka.WithViewConsumerSaramaBuilder(catchUpConsumerBuilder(k.Sarama())),
		goka.WithViewTopicManagerBuilder(k.TopicManagerBuilder()),
		goka.WithViewLogger(logs.Goka{L: k.logger.With("part", "view")}),
		// Reconnect in place when the brokers go away instead of failing:
		// a failing goka view drops its partitions without a lock, and a
		// read at that moment can panic (see clicks.View). The program
		// rebuilds a view that fails all the same (keepRunning).
		goka.WithViewAutoReconnect(),
	}
}
