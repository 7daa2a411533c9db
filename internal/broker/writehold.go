package broker

import (
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"clicks/internal/logs"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// WriteHold is what the broker holds from its start (Config.Hold) until
// OpenWrites: other clients' writes to Topics, but for records that all
// carry the header Filler.
type WriteHold struct {
	Filler string
	Topics []string
}

// writeGate holds off other clients' writes to some topics while the
// start-up repair runs, letting through only writes whose every record
// carries the filler header: a log that lost its end must be filled up
// to what was read of it before any new record takes one of the lost
// offsets, which the processor would take for a record it had counted
// and skip, for good. Writers are told to retry (KAFKA_STORAGE_ERROR, as
// a full disk does); the hold lasts until the lost ends are filled,
// after a read of the whole table (about a second with a million users).
type writeGate struct {
	topics  map[string]bool
	filler  string
	open    atomic.Bool
	refused atomic.Int64
	repeat  *logs.Repeat
}

// hold installs the gate of h on the cluster. It runs before the broker
// accepts any connection (see Start).
func (b *Embedded) hold(h WriteHold) {
	g := &writeGate{topics: map[string]bool{}, filler: h.Filler, repeat: logs.NewRepeat(b.logger.With("part", "broker"), 10*time.Second)}
	for _, t := range h.Topics {
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
		g.refused.Add(1)
		g.repeat.Warn("the embedded broker holds writes to the click topics until its start-up repair has filled what their logs lost: writers retry",
			"topics", strings.Join(h.Topics, ","))
		if preq.Acks == 0 {
			// No answer is expected: closing the connection is how a
			// broker says it did not write (as the disk guard does).
			return nil, errors.New("writes held while the start-up repair runs"), true
		}
		return refuse(preq), nil, true
	})
}

// OpenWrites ends the hold of Config.Hold.
func (b *Embedded) OpenWrites() {
	if b.gate != nil && !b.gate.open.Swap(true) && b.gate.refused.Load() > 0 {
		b.logger.Info("the embedded broker takes writes to the click topics again", "part", "broker", "refused", b.gate.refused.Load())
	}
}

// heldListener accepts no connection before ready is closed: kfake
// listens inside NewCluster, and the write hold can be installed only on
// the cluster NewCluster returns.
type heldListener struct {
	net.Listener
	ready <-chan struct{}
}

func (l heldListener) Accept() (net.Conn, error) {
	<-l.ready
	return l.Listener.Accept()
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
