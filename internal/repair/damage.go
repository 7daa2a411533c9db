package repair

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"clicks/internal/broker"
	"clicks/internal/clicks"
	"clicks/internal/filler"
	"clicks/internal/kafka"
	"clicks/internal/logs"

	"github.com/IBM/sarama"
)

// Run runs at start, before the emitter, the processor and the
// view: the local tables are made to agree with the table's changelog
// (what a damaged changelog lost and a local table holds is written back
// to it); then, where the processor or the embedded broker runs, the
// ends the click and loop logs lost are reported and filled, which ends
// the embedded broker's hold on other clients' writes (see
// broker.Config.Hold), and holes in their middle are reported; where the
// processor runs, what its group will never read is reported too, and
// counts the table lost are made again.
func (r *Repair) Run(ctx context.Context, client sarama.Client) error {
	start := time.Now()
	dirs := map[string]string{}
	if r.process {
		dirs["processor"] = r.cacheDir("processor")
	}
	if r.serve {
		dirs["view"] = r.cacheDir("view")
	}
	writtenBack, err := reconcileCaches(r.k, client, string(clicks.Table), dirs, clicks.NewerValue, func() error { return r.mayWriteBack(client) }, r.logger)
	if err != nil {
		return err
	}
	if !r.process && r.broker == nil {
		return nil
	}
	defer func() {
		// The whole table is read: with a million users it takes a
		// second or so (BenchmarkDamageCheck), which a slow start shows.
		r.logger.Info("checked the logs for damage", "took", time.Since(start).Round(10*time.Millisecond))
	}()
	if r.broker != nil {
		// Delete now what the settings keep no more, so that the reports
		// cover it, not the next round of retention.
		r.broker.ApplyRetention()
	}
	committed, counted, lost, err := r.findLostEnds(client)
	if err != nil {
		return err
	}
	if err := r.fillLostOffsets(client, lost); err != nil {
		return err
	}
	// Filled: new records take no lost offset now.
	if r.broker != nil {
		r.broker.OpenWrites()
	}
	holes, err := r.reportHoles(client)
	if err != nil {
		return err
	}
	if !r.process {
		// The embedded broker alone: the processor's instance does the
		// rest when it starts.
		return nil
	}
	return r.reportUnreadClicks(ctx, client, committed, counted, lost, writtenBack, holes)
}

// mayWriteBack returns why this instance must not write a local table's
// values back to the table's changelog, nil if it may: only the
// processor writes the table, and only while no other processor of the
// group runs, which may have written newer counts meanwhile (a stale
// value written back would become the key's last record).
func (r *Repair) mayWriteBack(client sarama.Client) error {
	if !r.process {
		return errors.New("this instance runs no processor (-process=false): a processor elsewhere may have counted on since")
	}
	members, state, err := GroupMembers(client, string(clicks.Group))
	if err != nil {
		return fmt.Errorf("cannot tell whether other processors run: %w", err)
	}
	if members > 0 {
		return fmt.Errorf("the processor group %s has %d members (state %s): processors of other instances run and may have counted on since; stop them all and start one", clicks.Group, members, state)
	}
	return nil
}

// reportHoles says which records the embedded broker's logs of
// user-clicks and the loop topic lost from their middle (a segment file
// lost or cut short), one line per hole; the readers go on past a hole
// without a word. It looks only where the broker runs in this process,
// which knows its segment files. A hole needs no filling (its offsets
// are never given again), but forwards a loop partition lost there may
// not have been counted: the loop partitions with holes are returned,
// for lostForwards.
func (r *Repair) reportHoles(client sarama.Client) ([]Gap, error) {
	if r.broker == nil {
		return nil, nil
	}
	var loopHoles []Gap
	for _, topic := range []string{r.topic, string(clicks.Loop)} {
		partitions, err := client.Partitions(topic)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		for _, p := range partitions {
			starts, err := r.broker.SegmentStarts(topic, p)
			if err != nil {
				return nil, err
			}
			holes, err := Holes(client, topic, p, starts)
			if err != nil {
				return nil, fmt.Errorf("look for records lost from the middle of the log: %w", err)
			}
			for _, h := range holes {
				r.metrics.RecordsLost(topic, h.To-h.From)
				r.logger.Warn("the broker's log lacks records in its middle: a segment file was lost or cut short (a damaged disk?); those records are gone, the counts keep what was counted of them",
					"topic", topic, "partition", p, "offsets", fmt.Sprintf("%d-%d", h.From, h.To-1), "records_lost", h.To-h.From)
			}
			if topic == string(clicks.Loop) {
				loopHoles = append(loopHoles, holes...)
			}
		}
	}
	return loopHoles, nil
}

// reportUnreadClicks says which clicks the processor group will never
// read: deleted by the brokers before it counted them, or lost from a
// damaged log, and counts the table's changelog lost (count them again).
// The group goes on after them without a word, so the loss shows only
// here. writtenBack are the partitions of the table whose changelog lost
// records a local table held; loopHoles, the holes found in the loop
// topic.
func (r *Repair) reportUnreadClicks(ctx context.Context, client sarama.Client, committed map[string]map[int32]int64, counted tableOffsets,
	lost []lostEnd, writtenBack []int32, loopHoles []Gap) error {
	deleted, err := Deleted(client, committed, r.topic, string(clicks.Loop))
	if err != nil {
		return err
	}
	for _, d := range deleted {
		r.metrics.DeletedUncounted(d.To - d.From)
		r.logger.Warn("clicks were deleted before they were counted: the processor was stopped longer than the broker keeps clicks (-broker-keep-mib, retention.ms)",
			"topic", d.Topic, "partition", d.Partition, "offsets", fmt.Sprintf("%d-%d", d.From, d.To-1), "clicks", d.To-d.From)
	}
	bounds, err := readBounds(client, r.topic)
	if err != nil {
		return err
	}
	rw := newRewinds()
	if err := r.countAgain(client, committed, counted, writtenBack, bounds, rw); err != nil {
		return err
	}
	if err := r.lostForwards(client, committed, counted, lost, loopHoles, bounds, rw); err != nil {
		return err
	}
	return r.rewind(ctx, client, committed, rw)
}

// findLostEnds finds and reports the ends the logs of user-clicks and
// the loop topic lost (see lostRecords), with what the group committed
// and the table says was counted.
func (r *Repair) findLostEnds(client sarama.Client) (map[string]map[int32]int64, tableOffsets, []lostEnd, error) {
	committed, err := Committed(client, string(clicks.Group), r.topic, string(clicks.Loop))
	if err != nil {
		return nil, tableOffsets{}, nil, err
	}
	counted, err := r.readCounted(client)
	if err != nil {
		return nil, tableOffsets{}, nil, err
	}
	lost, err := r.lostRecords(client, committed, counted)
	if err != nil {
		return nil, tableOffsets{}, nil, err
	}
	for _, l := range lost {
		if l.lostFrom() >= l.To {
			r.logger.Info("the embedded broker reloaded a partition that retention had emptied with its log end back at 0 (kfake forgets it): it is filled up to where it ended, so that new records get offsets not read before",
				"topic", l.Topic, "partition", l.Partition, "log_end", l.From, "ended_at", l.To)
			continue
		}
		r.metrics.RecordsLost(l.Topic, l.To-l.lostFrom())
		args := []any{"topic", l.Topic, "partition", l.Partition, "log_end", l.From, "read_up_to", l.committed}
		if l.Topic == r.topic {
			args = append(args, "counted_up_to", l.counted)
		}
		// records_lost: those read or counted; records_lost_uncounted:
		// those above, which the embedded broker held when it last
		// recorded its log ends (a second at most before it stopped),
		// and nobody had read or counted.
		read, from := max(l.committed, l.counted), l.lostFrom()
		args = append(args, "records_lost", max(min(read, l.To)-from, 0))
		if l.held > read {
			args = append(args, "held_up_to", l.held, "records_lost_uncounted", l.To-max(from, read))
		}
		if from > l.From {
			args = append(args, "deleted_before", from-l.From)
		}
		r.logger.Warn("the broker's log ends before what the processor had read or counted, or the broker held: it lost records (a damaged or truncated log? a power loss without -sync?); the counts keep what was counted of them", args...)
	}
	return committed, counted, lost, nil
}

// lostEnd is the end of a partition's log that was lost: the log now
// ends at From, before To, the highest of the offset the group committed
// and (user-clicks) the one after the last click the table says was
// counted.
type lostEnd struct {
	Gap
	committed int64 // 0 if the group never committed the partition
	counted   int64 // user-clicks only; 0 if the table counted none
	held      int64 // the log end the embedded broker last recorded; 0 if none
	// heldStart: the log start it recorded then. What lies below it
	// retention had deleted: kfake, reloading a partition retention
	// emptied, forgets where its log ended and starts it at 0 again
	// (see docs/upstream.md). That is not lost, but must be filled.
	heldStart int64
}

// lostFrom is where what the log really lost begins: above what
// retention had deleted.
func (l lostEnd) lostFrom() int64 { return max(l.From, min(l.heldStart, l.To)) }

// lostRecords finds the partitions of user-clicks and the loop topic
// whose log ends before what was known of it: the group's committed
// offset and, for user-clicks, the offsets the table values say were
// counted. The processor counts up to a second ahead of its commits, so
// a log that lost only its last records is seen only in the table. That
// takes a read of the whole table, at every start (the table values hold
// the offsets; compacted, the table keeps about one record per user).
func (r *Repair) lostRecords(client sarama.Client, committed map[string]map[int32]int64, counted tableOffsets) ([]lostEnd, error) {
	var lost []lostEnd
	for _, topic := range []string{r.topic, string(clicks.Loop)} {
		ends, err := kafka.Offsets(client, topic, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		held, heldStarts, err := r.heldEnds(topic)
		if err != nil {
			return nil, err
		}
		partitions, err := client.Partitions(topic)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		for _, p := range partitions {
			var countedTo int64
			if topic == r.topic {
				if c, ok := counted.anywhere[p]; ok {
					countedTo = c + 1
				}
			}
			if l, ok := lostEndOf(topic, p, ends[p], committed[topic][p], countedTo, held[p], heldStarts[p]); ok {
				lost = append(lost, l)
			}
		}
	}
	return lost, nil
}

// lostEndOf decides whether partition p of topic lost the end of its log:
// it did where the log ends (end) before the highest of what the group
// committed, what the table counted (countedTo: one past the last click
// counted from it, the click topic only; 0 if none) and what the embedded
// broker last recorded of its end (held; heldStart, its start then).
func lostEndOf(topic string, p int32, end, committed, countedTo, held, heldStart int64) (lostEnd, bool) {
	l := lostEnd{Gap: Gap{Topic: topic, Partition: p, From: end}, committed: committed, counted: countedTo, held: held, heldStart: heldStart}
	l.To = max(l.committed, l.counted, l.held)
	return l, l.From < l.To
}

// fillLostOffsets writes fillers into each partition whose log lost its
// end, up to what was read or counted before, so that new records get
// offsets no counted click had. In user-clicks the processor would take
// a new click on such an offset for one delivered again, and skip it, for
// good; in the loop topic a new forward below the group's committed
// offset would never be read.
func (r *Repair) fillLostOffsets(client sarama.Client, lost []lostEnd) error {
	for _, l := range lost {
		n, err := Fill(r.k, client, l.Topic, l.Partition, l.To, filler.Header)
		if err != nil {
			return err
		}
		r.logger.Info("filled the offsets the log lost, so that new records are not taken for ones read before",
			"topic", l.Topic, "partition", l.Partition, "offsets", fmt.Sprintf("%d-%d", l.To-n, l.To-1), "fillers", n)
	}
	return nil
}

// heldEnds are the log ends of topic the embedded broker running here
// last recorded (RecordLogEnds), if they are of the topic as it is now
// (not one deleted and created again since).
func (r *Repair) heldEnds(topic string) (ends, starts map[int32]int64, err error) {
	if r.broker == nil {
		return nil, nil, nil
	}
	prev, ok := r.broker.PreviousLogEnds()[topic]
	if !ok {
		return nil, nil, nil
	}
	id, err := r.k.TopicID(topic)
	if err != nil {
		return nil, nil, err
	}
	if id == "" || id != prev.ID {
		return nil, nil, nil
	}
	return prev.Ends, prev.Starts, nil
}

// RecordLogEnds records every second, until ctx ends and once more then,
// where the logs of user-clicks and the loop topic end, for the next
// start's check (see broker.PreviousLogEnds).
func (r *Repair) RecordLogEnds(ctx context.Context) error {
	// Not a reason to stop the program: the check it serves is one of
	// three, so a failure here is said and recording goes without.
	client, err := sarama.NewClient(r.k.Brokers, r.k.Sarama())
	if err != nil {
		r.logger.Warn("cannot record the log ends: a log that loses its end above what the processor counted will go unnoticed", "part", "broker", "err", err)
		return nil
	}
	defer client.Close()
	ids := map[string]string{}
	for _, topic := range []string{r.topic, string(clicks.Loop)} {
		if ids[topic], err = r.k.TopicID(topic); err != nil {
			r.logger.Warn("cannot record the log ends: a log that loses its end above what the processor counted will go unnoticed", "part", "broker", "err", err)
			return nil
		}
	}
	failed := logs.NewRepeat(r.logger.With("part", "broker"), 10*time.Second)
	var last broker.LogEnds
	record := func() {
		now := broker.LogEnds{}
		for topic, id := range ids {
			starts, err := kafka.Offsets(client, topic, sarama.OffsetOldest)
			if err != nil {
				failed.Warn("cannot record the log ends", "err", err)
				return
			}
			ends, err := kafka.Offsets(client, topic, sarama.OffsetNewest)
			if err != nil {
				failed.Warn("cannot record the log ends", "err", err)
				return
			}
			now[topic] = broker.TopicEnds{ID: id, Starts: starts, Ends: ends}
		}
		if reflect.DeepEqual(now, last) {
			return
		}
		if err := r.broker.SaveLogEnds(now); err != nil {
			failed.Warn("cannot record the log ends", "err", err)
			return
		}
		last = now
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		record()
		select {
		case <-ctx.Done():
			record()
			return nil
		case <-t.C:
		}
	}
}
