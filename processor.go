package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
)

// countClicks is the process callback of the original: it adds one to the
// user's count in the group table and, unless out is nil, prints a line
// for the click.
//
// Unlike the original it counts each click exactly once. goka alone
// counts at least once: a crash after the table write and before the
// input offset is committed delivers the click again. The value keeps the
// offset of the last click counted, and a click at or below it is not
// counted again. topicID names the incarnation of the input topic (see
// user.TopicID); "" where unknown.
//
// goka calls it for one key at a time within a partition, so it needs no
// locks: the table value is only changed through ctx.
func countClicks(out io.Writer, topicID string, m *clickMetrics, logger *slog.Logger) goka.ProcessCallback {
	return func(ctx goka.Context, msg any) {
		if ctx.Key() == "" {
			// A click with a null or empty key (another client may write
			// one) belongs to no user: it is skipped, not counted.
			logger.Warn("click without a user key skipped", "partition", ctx.Partition(), "offset", ctx.Offset())
			m.clickSkipped("no_key")
			return
		}
		u := &user{Offset: -1}
		if val := ctx.Value(); val != nil {
			v, ok := val.(*user)
			if !ok {
				ctx.Fail(fmt.Errorf("table value for %q is %T, want *main.user", ctx.Key(), val))
				return // not reached: Fail stops the processor
			}
			u = v
		}
		if u.TopicID == topicID && ctx.Offset() <= u.Offset {
			// Counted already. Write the value again all the same: after
			// a crash the local cache may hold a write the changelog never
			// got, and the changelog must hold it before goka commits
			// this offset.
			ctx.SetValue(u)
			m.clickSkipped("duplicate")
			return
		}
		u.Clicks++
		u.Offset = ctx.Offset()
		u.TopicID = topicID
		ctx.SetValue(u)
		m.clickProcessed()
		if out != nil {
			fmt.Fprintf(out, "[proc] key: %s clicks: %d, msg: %s\n", ctx.Key(), u.Clicks, truncate(fmt.Appendf(nil, "%v", msg), 100))
		}
	}
}

// clickGroup is the group graph of the original: input from the click
// stream, the count persisted in the group table with userCodec.
func clickGroup(out io.Writer, topicID string, m *clickMetrics, logger *slog.Logger) *goka.GroupGraph {
	return goka.DefineGroup(group,
		goka.Input(topic, new(codec.String), countClicks(out, topicID, m, logger)),
		goka.Persist(new(userCodec)),
	)
}

// newClickProcessor builds the processor, keeping its local copy of the
// group table in dir instead of goka's default under /tmp.
func newClickProcessor(k *kafka, dir, topicID string, out io.Writer, m *clickMetrics) (*goka.Processor, error) {
	p, err := goka.NewProcessor(k.brokers, clickGroup(out, topicID, m, k.logger.With("part", "processor")),
		goka.WithStorageBuilder(cacheBuilder(dir)),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(k.config())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(k.config())),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(k.config())),
		goka.WithTopicManagerBuilder(k.topicManagerBuilder()),
		goka.WithLogger(gokaLogger{k.logger.With("part", "processor")}),
	)
	if err != nil {
		return nil, fmt.Errorf("create processor for %s: %w", group, err)
	}
	return p, nil
}
