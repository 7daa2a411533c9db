package clicks

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"clicks/internal/filler"
	"clicks/internal/logs"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
)

// Counter holds what the process callbacks need.
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
type Counter struct {
	// Stream is the click topic it reads: Topic, or another name (the
	// original's emitter writes to "user-click").
	Stream goka.Stream

	out     io.Writer // the [proc] lines; nil prints none
	topicID string    // the incarnation of user-clicks (see User.TopicID); "" where unknown
	home    func(key string) int32
	events  Events
	skipLog *logs.Repeat // clicks not counted, logged once per interval
	recent  *recentUsers // the users last written, decoded
}

// NewCounter makes the callbacks for a processor of topicID's clicks in
// that many partitions; events (nil: none) hears of every click, logger
// of those not counted.
func NewCounter(out io.Writer, topicID string, partitions int32, events Events, logger *slog.Logger) *Counter {
	if events == nil {
		events = NoEvents{}
	}
	return &Counter{
		Stream:  Topic,
		out:     out,
		topicID: topicID,
		home:    func(key string) int32 { return KeyPartition(key, partitions) },
		events:  events,
		skipLog: logs.NewRepeat(logger, 10*time.Second),
		recent:  newRecentUsers(partitions),
	}
}

// click is the callback for user-clicks: it counts a click in its key's
// partition and forwards any other.
func (c *Counter) click(ctx goka.Context, msg any) {
	key := ctx.Key()
	if key == "" {
		if _, ok := ctx.Headers()[filler.Header]; ok {
			c.events.Skipped(SkipFiller) // not a click: no log line either
			return
		}
		// A click with a null or empty key (another client may write
		// one) belongs to no user: it is skipped, not counted.
		c.skip(ctx, SkipNoKey, "click without a user key skipped")
		return
	}
	if home := c.home(key); ctx.Partition() != home {
		f := &forward{Partition: ctx.Partition(), Offset: ctx.Offset(), TopicID: c.topicID}
		if c.out != nil {
			f.Value = clickText(msg)
		}
		ctx.Loopback(key, f)
		c.events.Forwarded()
		return
	}
	c.count(ctx, msg, -1, ctx.Offset(), c.topicID)
}

// forwarded is the callback for the loop topic: it counts a click that the
// click callback forwarded from another partition.
func (c *Counter) forwarded(ctx goka.Context, msg any) {
	if ctx.Key() == "" {
		// Fillers have no key; asking for headers costs a map.
		if _, ok := ctx.Headers()[filler.Header]; ok {
			c.events.Skipped(SkipFiller) // what a damaged loop topic lost, filled
			return
		}
	}
	var f *forward
	switch v := msg.(type) {
	case *forward:
		f = v
	case unreadable:
		// Not written by click: another client wrote to the loop topic.
		c.skip(ctx, SkipUnreadableForward, "record in the loop topic that is not a forwarded click skipped", "err", v.err)
		return
	case nil:
		// No value (the processor is given null values, which clicks may
		// be): not written by click either.
		c.skip(ctx, SkipUnreadableForward, "record in the loop topic that is not a forwarded click skipped", "err", "no value")
		return
	default:
		ctx.Fail(fmt.Errorf("loop message for %q is %T, want *clicks.forward", ctx.Key(), v))
		return // not reached: Fail stops the processor
	}
	switch {
	case c.topicID != "" && f.TopicID != "" && f.TopicID != c.topicID:
		// The click topic was deleted and created again; the loop topic
		// kept forwards of the old one, which a read of the loop topic
		// from its start (the start-up repair) would count again.
		c.skip(ctx, SkipStaleForward, "forward of an earlier incarnation of the click topic skipped", "topic_id", f.TopicID, "now", c.topicID)
		return
	case ctx.Key() == "":
		c.skip(ctx, SkipNoKey, "click without a user key skipped")
		return
	case ctx.Partition() != c.home(ctx.Key()):
		// Also not written by click, whose producer partitions by the
		// same hash; counting it here would be counting it in a table
		// partition the changelog never restores.
		ctx.Loopback(ctx.Key(), f)
		c.events.Forwarded()
		return
	}
	c.count(ctx, f.Value, f.Partition, f.Offset, f.TopicID)
}

// count adds the click at offset of partition from (-1: the key's own
// partition) of the topic incarnation topicID to the key's count, unless
// it was counted already.
func (c *Counter) count(ctx goka.Context, msg any, from int32, offset int64, topicID string) {
	recent := c.recent.of(ctx)
	u, kept := recent.get(ctx.Key())
	if !kept {
		switch v := ctx.Value().(type) {
		case nil:
			u = &User{Offset: -1}
		case *User:
			u = v
		case unreadable:
			// Written by another client. Counting on top of it would
			// restart the user at one; stopping would stop every other
			// user.
			c.skip(ctx, SkipUnreadableValue, "click for a user whose table value cannot be read skipped; write {\"Clicks\":N} for the key and restart the processor", "err", v.err)
			return
		default:
			ctx.Fail(fmt.Errorf("table value for %q is %T, want *clicks.User", ctx.Key(), v))
			return // not reached: Fail stops the processor
		}
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
		if !kept {
			recent.put(ctx.Key(), u, c.recent.perPartition)
		}
		c.events.Skipped(SkipDuplicate)
		return
	}
	u.Clicks++
	u.setCounted(from, offset)
	ctx.SetValue(u)
	if !kept { // a kept user is changed in place
		recent.put(ctx.Key(), u, c.recent.perPartition)
	}
	c.events.Counted()
	if c.out != nil {
		fmt.Fprintf(c.out, "[proc] key: %s clicks: %d, msg: %s\n", ctx.Key(), u.Clicks, clickText(msg))
	}
}

// clickText is a click's value as the [proc] line shows it and a forward
// carries it, cut at 100 bytes; without fmt for the string a click is.
func clickText(msg any) string {
	s, ok := msg.(string)
	if !ok {
		s = fmt.Sprint(msg)
	}
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// skip counts and logs a click that is not counted.
func (c *Counter) skip(ctx goka.Context, reason, msg string, args ...any) {
	c.events.Skipped(reason)
	c.skipLog.Warn(msg, append(args, "partition", ctx.Partition(), "offset", ctx.Offset())...)
}

// Graph is the group graph of the original: input from the click stream,
// the count persisted in the group table with UserCodec; and the loop
// topic for clicks that arrive outside their key's partition.
func (c *Counter) Graph() *goka.GroupGraph {
	return goka.DefineGroup(Group,
		goka.Input(c.Stream, new(codec.String), c.click),
		goka.Loop(new(forwardCodec), c.forwarded),
		goka.Persist(new(tableCodec)),
	)
}

// NewProcessor builds the processor of c's graph; opts say how it
// reaches Kafka and where it keeps its local table.
func NewProcessor(brokers []string, c *Counter, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	p, err := goka.NewProcessor(brokers, c.Graph(), opts...)
	if err != nil {
		return nil, fmt.Errorf("create processor for %s: %w", Group, err)
	}
	return p, nil
}
