package repair

import (
	"fmt"
	"slices"
	"strings"

	"clicks/internal/clicks"

	"github.com/IBM/sarama"
)

// lostForwards finds clicks forwarded through the loop topic whose
// forward is lost: a click outside its user's partition, below the
// group's committed offset of its partition (so it was forwarded), but
// neither counted (the table) nor waiting in the loop topic. A damaged
// loop topic loses such forwards, also above the group's committed
// offset of the loop topic, where nothing else would notice. Forwards of
// one partition reach the loop topic, and are counted, in their order,
// so one past the last counted or waiting is all to look from. The
// processor is made to read those clicks again, and forwards them again.
//
// A loop partition known to be damaged (its log ends before what was
// known of it, in lost; it has a hole, in loopHoles; it holds fillers
// at or above the group's commit, written by the repair of an embedded
// broker in another process) or read again (its table partition lost
// counts) is looked at from the last forward to it counted, or from the
// start of user-clicks where none is known. For the others, at every start, only the last
// recentForwards clicks below the commit of each partition of user-clicks
// are looked at: a healthy log holds the forwards of all of them, and a
// tail cut above the loop's commit loses only forwards written since that
// commit, whose clicks lie just below user-clicks' own commit (both are
// committed every second). With the emitter's clicks alone (none
// forwarded) nothing is read.
func (r *Repair) lostForwards(client sarama.Client, committed map[string]map[int32]int64, counted tableOffsets, lost []lostEnd, loopHoles []Gap, b logBounds, rw rewinds) error {
	damaged, holed := loopDamage(lost, loopHoles, rw.back[string(clicks.Loop)])
	// A loop partition whose lost end an embedded broker of another
	// process filled before this instance started: the record just below
	// the group's commit is a filler (until the group reads on past it).
	for p, c := range committed[string(clicks.Loop)] {
		if damaged[p] || c <= 0 {
			continue
		}
		err := Scan(client, string(clicks.Loop), p, c-1, c, func(m *sarama.ConsumerMessage) bool {
			damaged[p] = isFiller(m)
			return false
		})
		if err != nil {
			return fmt.Errorf("look for fillers in the loop topic: %w", err)
		}
	}
	id, err := r.k.TopicID(r.topic)
	if err != nil {
		return err
	}
	parts, starts, ends, loopStarts, loopEnds := b.parts, b.starts, b.ends, b.loopStarts, b.loopEnds
	// last[p][s]: the last click of partition s forwarded to loop
	// partition p that was counted or waits there (holed: counted); -1
	// where none is known and p is damaged (look from the start);
	// absent: do not look. waitingAt[p][s], holed p only: the clicks of
	// s whose forwards wait in p.
	last := map[int32]map[int32]int64{}
	waitingAt := map[int32]map[int32]map[int64]bool{}
	for p := range parts {
		// What waits in the loop topic, by the partition it came from:
		// from where the processor will read (it reads the rest again).
		from, ok := committed[string(clicks.Loop)][p]
		if !ok {
			from = loopStarts[p]
		}
		if again, ok := rw.back[string(clicks.Loop)][p]; ok {
			from = min(from, again)
		}
		waiting := map[int32]int64{}
		err := Scan(client, string(clicks.Loop), p, max(from, loopStarts[p]), loopEnds[p], func(m *sarama.ConsumerMessage) bool {
			if isFiller(m) {
				// Filled by an embedded broker of another process,
				// above the group's commit: the end was lost.
				damaged[p] = true
			}
			if s, o, ok := clicks.ForwardedFrom(m.Value, id); ok {
				waiting[s] = max(waiting[s], o)
				if holed[p] {
					if waitingAt[p] == nil {
						waitingAt[p] = map[int32]map[int64]bool{}
					}
					if waitingAt[p][s] == nil {
						waitingAt[p][s] = map[int64]bool{}
					}
					waitingAt[p][s][o] = true
				}
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("read what waits in the loop topic: %w", err)
		}
		last[p] = lastForwarded(parts, p, counted.forwarded[p], waiting, holed[p])
	}
	// One read of each partition of user-clicks, from the lowest of
	// what is to be looked at, for all partitions of the loop topic.
	notCounted := map[int32]int{}
	again := map[int32][]string{}
	firstUncounted := map[int32]map[int32]int64{} // holed p only, by s
	for s := range parts {
		c, read := committed[r.topic][s]
		if !read {
			continue
		}
		from, any := c, false
		for p := range parts {
			if l, ok := last[p][s]; ok {
				from, any = min(from, lookAfter(l, c, damaged[p])+1), true
			}
		}
		if !any {
			continue
		}
		first := map[int32]int64{}
		err := Scan(client, r.topic, s, max(from, starts[s]), min(c, ends[s]), func(m *sarama.ConsumerMessage) bool {
			if len(m.Key) == 0 {
				return true
			}
			p := clicks.KeyPartition(string(m.Key), parts)
			l, ok := last[p][s]
			if ok && m.Offset > lookAfter(l, c, damaged[p]) && clickOf(m, p, parts, counted) {
				if holed[p] {
					if firstUncounted[p] == nil {
						firstUncounted[p] = map[int32]int64{}
					}
					if _, seen := firstUncounted[p][s]; !seen {
						firstUncounted[p][s] = m.Offset
					}
					if waitingAt[p][s][m.Offset] {
						return true
					}
				}
				if _, seen := first[p]; !seen {
					first[p] = m.Offset
					rw.add(r.topic, s, m.Offset)
				}
				notCounted[p]++
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("look for forwards the loop topic lost: %w", err)
		}
		for p, o := range first {
			again[p] = append(again[p], fmt.Sprintf("%s/%d@%d", r.topic, s, o))
		}
	}
	for p := range parts {
		if notCounted[p] > 0 && holed[p] {
			var from []string
			for s, o := range firstUncounted[p] {
				rw.add(r.topic, s, o)
				from = append(from, fmt.Sprintf("%s/%d@%d", r.topic, s, o))
			}
			slices.Sort(from)
			rw.skip[p] = skipLoop{to: loopEnds[p], forwardsLost: int64(notCounted[p])}
			r.logger.Warn("a hole in the loop topic lost forwards before they were counted: the processor skips what waits there and forwards again, in order, every click not counted yet",
				"topic", clicks.Loop, "partition", p, "clicks_not_counted", notCounted[p], "skip_to", loopEnds[p], "count_again_from", strings.Join(from, ","))
			// Forwards that wait there of clicks user-clicks no longer
			// holds (deleted by retention, or in an end it lost) cannot
			// be made again: skipped, they are lost.
			dropped := 0
			for s, offsets := range waitingAt[p] {
				for o := range offsets {
					if o < starts[s] || inLostEnd(lost, r.topic, s, o) {
						dropped++
					}
				}
			}
			if dropped > 0 {
				r.metrics.NotCountedAgain(int64(dropped))
				r.logger.Error("forwards waiting in a loop partition with a hole are skipped, and their clicks are no longer in user-clicks (deleted, or lost with its end): their counts are lost",
					"topic", clicks.Loop, "partition", p, "records_not_counted_again", dropped)
			}
			continue
		}
		if notCounted[p] > 0 {
			r.logger.Warn("clicks forwarded through the loop topic were lost before they were counted (a damaged or truncated log?): the processor reads them again",
				"topic", clicks.Loop, "partition", p, "log_end", loopEnds[p], "clicks_not_counted", notCounted[p], "count_again_from", strings.Join(again[p], ","))
		}
	}
	return nil
}

// loopDamage returns the loop partitions known to be damaged at start:
// those whose log lost its end (lost), those with a hole (loopHoles, also
// holed), and those read again because their table partition lost counts
// (readAgain).
func loopDamage(lost []lostEnd, loopHoles []Gap, readAgain map[int32]int64) (damaged, holed map[int32]bool) {
	damaged, holed = map[int32]bool{}, map[int32]bool{}
	for _, l := range lost {
		if l.Topic == string(clicks.Loop) && l.lostFrom() < l.To {
			damaged[l.Partition] = true
		}
	}
	// A hole loses forwards from the middle of what waits in a loop
	// partition: the forwards after it have higher offsets of the same
	// partitions than those lost, and once counted they would make the
	// lost ones, forwarded again, look like ones counted before. So
	// where a hole lost forwards, the group skips what waits in the
	// loop partition, and all its forwards not counted are made again,
	// in order, from user-clicks.
	for _, h := range loopHoles {
		damaged[h.Partition] = true
		holed[h.Partition] = true
	}
	for p := range readAgain {
		damaged[p] = true
	}
	return damaged, holed
}

// lastForwarded returns, for each partition s of user-clicks but p, the
// offset of the last click of s forwarded to loop partition p that was
// counted (counted, from the table) or waits there (waiting; not trusted
// in a holed partition, whose waiting forwards are made again); -1 where
// none is known.
func lastForwarded(parts, p int32, counted, waiting map[int32]int64, holed bool) map[int32]int64 {
	last := make(map[int32]int64, parts)
	for s := range parts {
		if s == p {
			continue
		}
		l := int64(-1)
		if o, ok := counted[s]; ok {
			l = o
		}
		if o, ok := waiting[s]; ok && !holed {
			l = max(l, o)
		}
		last[s] = l
	}
	return last
}

// lookAfter is the offset of a partition of user-clicks, committed up
// to c, after which its clicks forwarded to a loop partition are looked
// at: after the last one counted or waiting there (last), and, where the
// loop partition is not known to be damaged, only among the last
// recentForwards below c.
func lookAfter(last, c int64, damaged bool) int64 {
	if damaged {
		return last
	}
	return max(last, c-recentForwards-1)
}

// inLostEnd tells whether offset o of topic/p lies in an end its log lost.
func inLostEnd(lost []lostEnd, topic string, p int32, o int64) bool {
	for _, l := range lost {
		if l.Topic == topic && l.Partition == p && o >= l.From && o < l.To {
			return true
		}
	}
	return false
}
