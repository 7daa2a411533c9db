package repair

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/filler"
	"clicks/internal/kafka"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// tableOffsets is what the table says was counted of user-clicks (of its
// current incarnation), by partition.
type tableOffsets struct {
	// anywhere: the highest offset counted from a partition, of its
	// users' clicks and forwarded ones; home: of its users' own clicks,
	// held in the same partition of the table.
	anywhere, home map[int32]int64
	// forwarded, by partition of the table: the highest offset of each
	// other partition of user-clicks whose forwarded clicks its users
	// counted.
	forwarded  map[int32]map[int32]int64
	unreadable map[string]bool // users whose value cannot be read: their clicks are skipped, not counted
	// legacy: users whose count is goka's 2-clicks' {"Clicks":N}, which
	// holds their clicks up to the group's commit (see clicks.Stored).
	legacy map[string]bool
}

// readCounted reads the whole table for what it says was counted. The
// table values hold these offsets, and compacted the table keeps about
// one record per user, so it is read at every start.
func (r *Repair) readCounted(client sarama.Client) (tableOffsets, error) {
	counted := tableOffsets{anywhere: map[int32]int64{}, home: map[int32]int64{},
		forwarded: map[int32]map[int32]int64{}, unreadable: map[string]bool{}, legacy: map[string]bool{}}
	id, err := r.k.TopicID(r.topic)
	if err != nil {
		return counted, err
	}
	raise := func(m map[int32]int64, p int32, o int64) {
		if cur, ok := m[p]; !ok || o > cur {
			m[p] = o
		}
	}
	err = ReadTopic(client, string(clicks.Table), func(p int32, key, value []byte) {
		v := clicks.ReadStored(value, id)
		if !v.Readable {
			counted.unreadable[string(key)] = true
			return
		}
		if len(counted.unreadable) > 0 {
			delete(counted.unreadable, string(key))
		}
		if v.Legacy {
			counted.legacy[string(key)] = true
			return
		}
		if len(counted.legacy) > 0 {
			delete(counted.legacy, string(key))
		}
		if v.Home >= 0 {
			raise(counted.home, p, v.Home)
			raise(counted.anywhere, p, v.Home)
		}
		for s, o := range v.Forwarded {
			if counted.forwarded[p] == nil {
				counted.forwarded[p] = map[int32]int64{}
			}
			raise(counted.forwarded[p], s, o)
			raise(counted.anywhere, s, o)
		}
	})
	if err != nil {
		return counted, fmt.Errorf("read what was counted: %w", err)
	}
	return counted, nil
}

// recentForwards is how many clicks below the group's commit of each
// partition of user-clicks the start-up check reads for forwards a cut
// loop partition lost, where it knows of no damage: the clicks of about
// four seconds at the program's top counting rate (12,000 a second a
// partition), two fetches of a few MiB.
const recentForwards = 50_000

// rewinds are how the group's committed offsets are to change, by topic
// and partition: back, to read records again; or, for a loop partition
// with a hole whose forwards are made again from user-clicks, on to its
// end (see lostForwards).
type rewinds struct {
	back map[string]map[int32]int64
	skip map[int32]skipLoop
}

// skipLoop: the group reads the loop partition on from to, not what it
// holds below; forwardsLost are lost if it cannot.
type skipLoop struct{ to, forwardsLost int64 }

func newRewinds() rewinds {
	return rewinds{back: map[string]map[int32]int64{}, skip: map[int32]skipLoop{}}
}

// add asks for topic/p to be read again from offset; the lowest asked
// wins.
func (rw rewinds) add(topic string, p int32, offset int64) {
	if rw.back[topic] == nil {
		rw.back[topic] = map[int32]int64{}
	}
	if cur, ok := rw.back[topic][p]; !ok || offset < cur {
		rw.back[topic][p] = offset
	}
}

// rewind sets the group's committed offsets back as rw asks, where it
// committed more, and on past the loop partitions rw skips. The
// coordinator refuses while the group has members: a processor killed
// with its broker running stays a member until its session times out,
// so rewind waits for the group to empty, up to the session timeout and
// a margin, or until ctx ends. Members that stay (processors of other
// instances) keep the records from being counted again, for good: an
// error line says which, and clicks_not_counted_again_total counts them.
func (r *Repair) rewind(ctx context.Context, client sarama.Client, committed map[string]map[int32]int64, rw rewinds) error {
	type back struct {
		topic     string
		p         int32
		offset, c int64
		lost      int64 // if it cannot be done
	}
	var backs []back
	for topic, parts := range rw.back {
		for p, offset := range parts {
			if _, skip := rw.skip[p]; skip && topic == string(clicks.Loop) {
				continue
			}
			if c, ok := committed[topic][p]; ok && offset < c {
				backs = append(backs, back{topic, p, offset, c, c - offset})
			}
		}
	}
	for p, s := range rw.skip {
		// Also where the group never committed it: it would read the
		// partition from its start.
		if c, ok := committed[string(clicks.Loop)][p]; !ok || c != s.to {
			backs = append(backs, back{string(clicks.Loop), p, s.to, c, s.forwardsLost})
		}
	}
	if len(backs) == 0 {
		return nil
	}
	slices.SortFunc(backs, func(a, b back) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.p, b.p))
	})
	wait := r.groupWait
	if wait <= 0 {
		wait = r.k.Sarama().Consumer.Group.Session.Timeout + rewindMargin
	}
	members, state, werr := r.waitForEmptyGroup(ctx, client, wait)
	if ctx.Err() != nil {
		// Stopped while waiting: nothing was set back, so the next
		// start finds the same counts lost and sets back again (the
		// lost ends are filled, and a loop partition's lost forwards
		// are then looked for in the last clicks only).
		return ctx.Err()
	}
	for _, b := range backs {
		var why string
		switch {
		case werr != nil:
			why = werr.Error()
		case members > 0:
			why = fmt.Sprintf("the processor group still has %d members (state %s) after %v: do other processors of the group run? stop them all and start one", members, state, wait)
		default:
			err := Rewind(client, string(clicks.Group), b.topic, b.p, b.offset)
			if err == nil {
				continue
			}
			why = err.Error()
		}
		r.metrics.NotCountedAgain(b.lost)
		if b.offset > b.c {
			r.logger.Error("cannot make the processor group skip a loop partition with a hole, whose forwards are made again: the forwards lost in the hole stay uncounted",
				"topic", b.topic, "partition", b.p, "read_on_from", b.offset, "records_not_counted_again", b.lost, "why", why)
			continue
		}
		r.logger.Error("cannot make the processor group read those records again: their counts stay lost",
			"topic", b.topic, "partition", b.p, "offsets", fmt.Sprintf("%d-%d", b.offset, b.c-1), "records_not_counted_again", b.lost, "why", why)
	}
	return nil
}

// rewindMargin is how long past the group's session timeout rewind waits
// for a killed member to leave, unless Config.GroupWait says otherwise.
const rewindMargin = 5 * time.Second

// waitForEmptyGroup polls the processor group until it has no members,
// wait has passed or ctx ends, and returns its members and state then.
func (r *Repair) waitForEmptyGroup(ctx context.Context, client sarama.Client, wait time.Duration) (members int, state string, err error) {
	deadline := time.Now().Add(wait)
	logged := false
	for {
		members, state, err = GroupMembers(client, string(clicks.Group))
		if err == nil && members == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return members, state, err
		}
		if !logged && err == nil {
			logged = true
			r.logger.Warn("waiting for the processor group to empty before it reads records again (a killed processor stays a member until its session times out)",
				"group", clicks.Group, "members", members, "state", state, "up_to", wait)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// isFiller tells whether m is a filler of an earlier repair.
func isFiller(m *sarama.ConsumerMessage) bool {
	for _, h := range m.Headers {
		if string(h.Key) == filler.Header {
			return true
		}
	}
	return false
}

// clickOf returns whether m is a click of a user of partition p (of
// parts) that the processor counts (not a filler, a user whose value can
// be read) and whose value says what it counted: the count of a user that
// goka's 2-clicks left holds every click below the group's commit.
func clickOf(m *sarama.ConsumerMessage, p, parts int32, counted tableOffsets) bool {
	key := string(m.Key)
	return !isFiller(m) && len(key) > 0 && clicks.KeyPartition(key, parts) == p && !counted.unreadable[key] && !counted.legacy[key]
}

// logBounds are where the logs of user-clicks and the loop topic start
// and end, by partition, read once for the start-up repair.
type logBounds struct {
	parts                              int32 // of user-clicks (the loop topic has as many)
	starts, ends, loopStarts, loopEnds map[int32]int64
}

// readBounds reads the logBounds of the click topic and the loop topic.
func readBounds(client sarama.Client, topic string) (logBounds, error) {
	var b logBounds
	n, err := client.Partitions(topic)
	if err != nil {
		return b, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	b.parts = int32(len(n))
	for _, o := range []struct {
		to    *map[int32]int64
		topic goka.Stream
		at    int64
	}{
		{&b.starts, goka.Stream(topic), sarama.OffsetOldest}, {&b.ends, goka.Stream(topic), sarama.OffsetNewest},
		{&b.loopStarts, clicks.Loop, sarama.OffsetOldest}, {&b.loopEnds, clicks.Loop, sarama.OffsetNewest},
	} {
		if *o.to, err = kafka.Offsets(client, string(o.topic), o.at); err != nil {
			return b, err
		}
	}
	return b, nil
}

// countAgain finds the partitions of the table whose changelog lost
// counts: those where a local table held what it lost (writtenBack), and
// those where a click of a user of the partition lies below the group's
// committed offset but above what the table says was counted of them.
// The processor is then made to read again the clicks and forwards the
// table may lack: the group's offsets go back to the first such click of
// user-clicks and to the start of the loop topic. A click counted before
// is recognised by its user's stored offset, so only the lost counts are
// made again.
func (r *Repair) countAgain(client sarama.Client, committed map[string]map[int32]int64, counted tableOffsets, writtenBack []int32, b logBounds, rw rewinds) error {
	parts, starts, ends, loopStarts := b.parts, b.starts, b.ends, b.loopStarts
	for p := range parts {
		home, ok := counted.home[p]
		if !ok {
			home = -1
		}
		c, read := committed[r.topic][p]
		at, found := int64(0), false
		if read {
			// Up to the log end, where the log lost its end too.
			err := Scan(client, r.topic, p, max(home+1, starts[p]), min(c, ends[p]), func(m *sarama.ConsumerMessage) bool {
				at, found = m.Offset, clickOf(m, p, parts, counted)
				return !found
			})
			if err != nil {
				return fmt.Errorf("look for clicks the table lost: %w", err)
			}
		}
		if !found && !slices.Contains(writtenBack, p) {
			continue
		}
		args := []any{"topic", clicks.Table, "partition", p, "counted_up_to", home + 1}
		if found {
			rw.add(r.topic, p, at)
			args = append(args, "read_up_to", c, "count_again_from", at)
		}
		if _, ok := committed[string(clicks.Loop)][p]; ok {
			rw.add(string(clicks.Loop), p, loopStarts[p])
			args = append(args, "loop_again_from", loopStarts[p])
		}
		r.logger.Warn("the table's changelog lost counts (a damaged or truncated log?): the processor reads those clicks again and counts what the table lacks", args...)
		if home+1 < starts[p] {
			r.logger.Warn("the broker deleted clicks that what the table's changelog lost may have counted: the counts of those are lost",
				"topic", r.topic, "partition", p, "offsets", fmt.Sprintf("%d-%d", home+1, starts[p]-1))
		}
	}
	return nil
}
