package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
)

// clickCounter holds what the process callbacks need.
//
// Unlike the original it counts each click exactly once, whichever
// client wrote it and into whichever partition:
//
//   - goka keeps a user's count in the table partition of the partition
//     the message came from, but writes the changelog record to the
//     partition its hasher gives the key. So a click that is not in its
//     key's partition (kcat, Java and franz-go clients hash keys
//     differently, and any writer may pick a partition) is forwarded
//     there through the group's loop topic, as Kafka Streams does with a
//     repartition topic, and counted when it comes back; see route.go.
//   - goka alone counts at least once: a crash after the table write (or
//     the forward) and before the input offset is committed delivers the
//     click again. The value keeps the offset of the last click counted
//     from the key's own partition, and, for forwarded clicks, the
//     highest offset counted from each other partition; a click at or
//     below it is not counted again.
//
// goka calls the callbacks for one partition at a time, and a partition's
// clicks and forwards one after another, so they need no locks: the table
// value is only changed through ctx.
type clickCounter struct {
	out     io.Writer // the [proc] lines; nil prints none
	topicID string    // the incarnation of user-clicks (see user.TopicID); "" where unknown
	home    func(key string) int32
	m       *clickMetrics
	logger  *slog.Logger
	skipLog *repeatLog // clicks not counted, logged once per interval
}

func newClickCounter(out io.Writer, topicID string, partitions int32, m *clickMetrics, logger *slog.Logger) *clickCounter {
	return &clickCounter{
		out:     out,
		topicID: topicID,
		home:    func(key string) int32 { return keyPartition(key, partitions) },
		m:       m,
		logger:  logger,
		skipLog: newRepeatLog(logger, 10*time.Second),
	}
}

// click is the callback for user-clicks: it counts a click in its key's
// partition and forwards any other.
func (c *clickCounter) click(ctx goka.Context, msg any) {
	key := ctx.Key()
	if key == "" {
		// A click with a null or empty key (another client may write
		// one) belongs to no user: it is skipped, not counted.
		c.skip(ctx, "no_key", "click without a user key skipped")
		return
	}
	if home := c.home(key); ctx.Partition() != home {
		ctx.Loopback(key, &forward{
			Partition: ctx.Partition(),
			Offset:    ctx.Offset(),
			TopicID:   c.topicID,
			Value:     string(truncate(fmt.Appendf(nil, "%v", msg), 100)),
		})
		c.m.clickForwarded()
		return
	}
	c.count(ctx, msg, -1, ctx.Offset(), c.topicID)
}

// forwarded is the callback for the loop topic: it counts a click that
// click forwarded from another partition.
func (c *clickCounter) forwarded(ctx goka.Context, msg any) {
	var f *forward
	switch v := msg.(type) {
	case *forward:
		f = v
	case unreadable:
		// Not written by click: another client wrote to the loop topic.
		c.skip(ctx, "unreadable_forward", "record in the loop topic that is not a forwarded click skipped", "err", v.err)
		return
	default:
		ctx.Fail(fmt.Errorf("loop message for %q is %T, want *main.forward", ctx.Key(), v))
		return // not reached: Fail stops the processor
	}
	switch {
	case ctx.Key() == "":
		c.skip(ctx, "no_key", "click without a user key skipped")
		return
	case ctx.Partition() != c.home(ctx.Key()):
		// Also not written by click, whose producer partitions by the
		// same hash; counting it here would be counting it in a table
		// partition the changelog never restores.
		ctx.Loopback(ctx.Key(), f)
		c.m.clickForwarded()
		return
	}
	c.count(ctx, f.Value, f.Partition, f.Offset, f.TopicID)
}

// count adds the click at offset of partition from (-1: the key's own
// partition) of the topic incarnation topicID to the key's count, unless
// it was counted already.
func (c *clickCounter) count(ctx goka.Context, msg any, from int32, offset int64, topicID string) {
	u := &user{Offset: -1}
	switch v := ctx.Value().(type) {
	case nil:
	case *user:
		u = v
	case unreadable:
		// Written by another client. Counting on top of it would restart
		// the user at one; stopping would stop every other user.
		c.skip(ctx, "unreadable_value", "click for a user whose table value cannot be read skipped; write {\"Clicks\":N} for the key and restart the processor", "err", v.err)
		return
	default:
		ctx.Fail(fmt.Errorf("table value for %q is %T, want *main.user", ctx.Key(), v))
		return // not reached: Fail stops the processor
	}
	if u.TopicID != topicID {
		// A topic deleted and created again starts its offsets at zero:
		// the offsets kept belong to the old one.
		u.Offset, u.Forwarded, u.TopicID = -1, nil, topicID
	}
	if offset <= u.lastCounted(from) {
		// Counted already. Write the value again all the same: after
		// a crash the local cache may hold a write the changelog never
		// got, and the changelog must hold it before goka commits
		// this offset.
		ctx.SetValue(u)
		c.m.clickSkipped("duplicate")
		return
	}
	u.Clicks++
	u.setCounted(from, offset)
	ctx.SetValue(u)
	c.m.clickProcessed()
	if c.out != nil {
		fmt.Fprintf(c.out, "[proc] key: %s clicks: %d, msg: %s\n", ctx.Key(), u.Clicks, truncate(fmt.Appendf(nil, "%v", msg), 100))
	}
}

// skip counts and logs a click that is not counted.
func (c *clickCounter) skip(ctx goka.Context, reason, msg string, args ...any) {
	c.m.clickSkipped(reason)
	c.skipLog.Warn(msg, append(args, "partition", ctx.Partition(), "offset", ctx.Offset())...)
}

// clickGroup is the group graph of the original: input from the click
// stream, the count persisted in the group table with userCodec; and the
// loop topic for clicks that arrive outside their key's partition.
func clickGroup(c *clickCounter) *goka.GroupGraph {
	return goka.DefineGroup(group,
		goka.Input(topic, new(codec.String), c.click),
		goka.Loop(new(forwardCodec), c.forwarded),
		goka.Persist(new(tableCodec)),
	)
}

// newClickProcessor builds the processor, keeping its local copy of the
// group table in dir instead of goka's default under /tmp.
func newClickProcessor(k *kafka, dir string, c *clickCounter) (*goka.Processor, error) {
	p, err := goka.NewProcessor(k.brokers, clickGroup(c),
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
