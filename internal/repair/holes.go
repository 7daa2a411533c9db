package repair

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"clicks/internal/kafka"

	"github.com/IBM/sarama"
)

// Holes finds the records missing from the middle of partition p of
// topic, a topic that is not compacted: a segment file lost or cut
// short (a damaged disk, a file system check) takes records from the
// middle of a log, and the broker serves on from the next record it
// has, as it does after compaction, so that no reader notices.
//
// segmentStarts are the offsets at which the partition's segment files
// begin, in order (the embedded broker names each after its first
// record). A log without compaction has no gap between a segment's last
// record and the next segment's first, so one small fetch of the offset
// just before each segment start tells whether the record there is
// present; where it is not, the broker answers with the next record it
// has, where the hole ends, and the segment before is read for where
// the hole begins. Records the log start has passed (retention) are not
// looked at.
func Holes(client sarama.Client, topic string, p int32, segmentStarts []int64) ([]Gap, error) {
	if len(segmentStarts) < 2 {
		return nil, nil
	}
	logStart, err := client.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return nil, fmt.Errorf("log start of %s/%d: %w", topic, p, err)
	}
	var holes []Gap
	for i := 1; i < len(segmentStarts); i++ {
		last := segmentStarts[i] - 1 // the last offset of the segment before
		if last < logStart {
			continue
		}
		next, err := firstBatchFrom(client, topic, p, last)
		if errors.Is(err, sarama.ErrOffsetOutOfRange) {
			// Retention deleted it meanwhile: look from the new log start.
			if logStart, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
				return nil, fmt.Errorf("log start of %s/%d: %w", topic, p, err)
			}
			holes = nil
			i = 0
			continue
		}
		if err != nil {
			return nil, err
		}
		if next <= last {
			continue // present
		}
		from, err := endBefore(client, topic, p, max(segmentStarts[i-1], logStart), last)
		if err != nil {
			return nil, err
		}
		// A hole may reach on past an emptied segment (its file is
		// there, its records are not): that segment's own look reports
		// the rest, so that no record is reported twice.
		holes = append(holes, Gap{Topic: topic, Partition: p, From: from, To: min(next, segmentStarts[i])})
	}
	return holes, nil
}

// probeBytes is what a fetch of Holes asks for: the broker returns the
// first batch whole, however large, and a look needs no more.
const probeBytes = 1

// batchSpan is the offsets of one record batch, first to last.
type batchSpan struct{ first, last int64 }

// fetchSpans returns the whole record batches partition p of topic holds
// from offset on (the first of them may begin before it), as far as a
// fetch of maxBytes returns, with the log's high watermark then.
func fetchSpans(client sarama.Client, topic string, p int32, offset int64, maxBytes int32) ([]batchSpan, int64, error) {
	block, err := fetchBlock(client, topic, p, offset, maxBytes)
	if err != nil {
		return nil, 0, err
	}
	if !errors.Is(block.Err, sarama.ErrNoError) {
		return nil, 0, fmt.Errorf("read %s/%d at %d: %w", topic, p, offset, block.Err)
	}
	var spans []batchSpan
	for _, rs := range block.RecordsSet {
		if b := rs.RecordBatch; b != nil && !b.PartialTrailingRecord {
			spans = append(spans, batchSpan{b.FirstOffset, b.FirstOffset + int64(b.LastOffsetDelta)})
		}
	}
	return spans, block.HighWaterMarkOffset, nil
}

// firstBatchFrom returns the lowest offset at or after offset that the
// log holds a record at: offset itself where a batch holds it, the first
// offset of the next batch where the log has none there, and the high
// watermark where it holds nothing after.
func firstBatchFrom(client sarama.Client, topic string, p int32, offset int64) (int64, error) {
	spans, hwm, err := fetchSpans(client, topic, p, offset, probeBytes)
	if err != nil {
		return 0, err
	}
	for _, s := range spans {
		if s.last >= offset {
			return max(s.first, offset), nil
		}
	}
	return hwm, nil
}

// endBefore returns the offset after the last record the log holds from
// from up to (not including) before: from where it holds none there.
func endBefore(client sarama.Client, topic string, p int32, from, before int64) (int64, error) {
	end := from
	for end < before {
		spans, _, err := fetchSpans(client, topic, p, end, scanFetchBytes)
		if err != nil {
			return 0, err
		}
		moved := false
		for _, s := range spans {
			if s.first >= before {
				return end, nil
			}
			if s.last+1 > end {
				end, moved = s.last+1, true
			}
		}
		if !moved {
			return end, nil
		}
	}
	return min(end, before), nil
}

// Gap is a range of records of a partition, offsets [From, To), that a
// group will never read: deleted by retention before the group read them,
// or lost from a log that now ends before what the group had read.
type Gap struct {
	Topic     string
	Partition int32
	From, To  int64
}

// Deleted finds, for each partition of topics, the records a group will
// not read because they were deleted: the log now starts after the offset
// the group committed (committed, as Committed returns it). A consumer
// goes on at the log start without a word (sarama's ResetInvalidOffsets),
// so this is the only place it can be seen. A log that now ends before
// the committed offset (a damaged log) is the start-up repair's.
func Deleted(client sarama.Client, committed map[string]map[int32]int64, topics ...string) ([]Gap, error) {
	var deleted []Gap
	for _, topic := range topics {
		if len(committed[topic]) == 0 {
			continue
		}
		starts, err := kafka.Offsets(client, topic, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		for p, c := range committed[topic] {
			if start := starts[p]; start > c {
				deleted = append(deleted, Gap{Topic: topic, Partition: p, From: c, To: start})
			}
		}
	}
	slices.SortFunc(deleted, compareGaps)
	return deleted, nil
}

func compareGaps(a, b Gap) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}
