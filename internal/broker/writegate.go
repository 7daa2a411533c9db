package broker

import (
	"encoding/binary"
	"errors"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// writeGate holds off other clients' writes to some topics while the
// start-up repair runs (see HoldWrites), letting through only writes
// whose every record carries the filler header: a log that lost its end
// must be filled up to what was read of it before any new record takes
// one of the lost offsets, which the processor would take for a record
// it had counted and skip, for good. Writers are told to retry
// (KAFKA_STORAGE_ERROR, as a full disk does), and the repair takes well
// under a second on a table of a million users.
type writeGate struct {
	topics map[string]bool
	filler string
	open   atomic.Bool
}

// HoldWrites makes the broker refuse writes to topics, other than of
// records that all carry the header filler, until OpenWrites. A write
// that names its topic by ID only (produce version 13 on) is refused
// while it holds, whatever its topic. Hold before any client can write:
// right after Start.
func (b *Embedded) HoldWrites(filler string, topics ...string) {
	g := &writeGate{topics: map[string]bool{}, filler: filler}
	for _, t := range topics {
		g.topics[t] = true
	}
	b.gate = g
	c := b.Cluster
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if g.open.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		preq := req.(*kmsg.ProduceRequest)
		if g.lets(preq) {
			return nil, nil, false
		}
		if preq.Acks == 0 {
			// No answer is expected: closing the connection is how a
			// broker says it did not write (as the disk guard does).
			return nil, errors.New("writes held while the start-up repair runs"), true
		}
		return refuse(preq), nil, true
	})
}

// OpenWrites ends HoldWrites.
func (b *Embedded) OpenWrites() {
	if b.gate != nil {
		b.gate.open.Store(true)
	}
}

// lets tells whether req may be written while the gate holds.
func (g *writeGate) lets(req *kmsg.ProduceRequest) bool {
	for _, t := range req.Topics {
		if t.Topic == "" {
			return false
		}
		if !g.topics[t.Topic] {
			continue
		}
		for _, p := range t.Partitions {
			if !allCarry(p.Records, g.filler) {
				return false
			}
		}
	}
	return true
}

// allCarry tells whether every record of the uncompressed record batches
// in raw carries header (compressed batches are not looked into: clicks
// writes its fillers uncompressed).
func allCarry(raw []byte, header string) bool {
	for len(raw) > 0 {
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(raw); err != nil {
			return false
		}
		raw = raw[12+int(batch.Length):] // base offset and length, then the batch
		if batch.Attributes&0x07 != 0 {
			return false
		}
		recs := batch.Records
		for range batch.NumRecords {
			n, w := binary.Varint(recs)
			if w <= 0 || n < 0 || int64(len(recs)-w) < n {
				return false
			}
			var rec kmsg.Record
			if err := rec.ReadFrom(recs[:w+int(n)]); err != nil {
				return false
			}
			recs = recs[w+int(n):]
			carries := false
			for _, h := range rec.Headers {
				carries = carries || h.Key == header
			}
			if !carries {
				return false
			}
		}
	}
	return true
}
