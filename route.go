package main

import (
	"encoding/json"
	"fmt"
)

// keyPartition is the partition of key among n, as goka's emitter, view
// and table writes choose it: sarama's hash partitioner over goka's
// default hasher, FNV-1a, with its absolute value of the signed sum.
// Written out because the processor asks for every click, and sarama's
// partitioner allocates a message and a hasher each time;
// TestKeyPartitionIsGokas checks it against sarama's.
func keyPartition(key string, n int32) int32 {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime32
	}
	p := int32(h) % n
	if p < 0 {
		p = -p
	}
	return p
}

// forward is what the processor writes to the loop topic for a click that
// arrived outside its key's partition: where the click is, so that a
// forward written again after a crash is recognised, and the click's
// value, shortened, for the [proc] line. The loop topic's key is the
// click's key.
type forward struct {
	Partition int32  // of the click in user-clicks
	Offset    int64  // of the click in that partition
	TopicID   string `json:",omitempty"` // the incarnation of user-clicks
	Value     string `json:",omitempty"` // the click's value, at most 100 bytes
}

// forwardCodec is the loop topic's codec: JSON. Only clicks from other
// clients pass through it, so it is not on the emitter's path.
type forwardCodec struct{}

func (forwardCodec) Encode(value any) ([]byte, error) {
	f, ok := value.(*forward)
	if !ok || f == nil {
		return nil, fmt.Errorf("encode forward: got %T, want *main.forward", value)
	}
	data, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode forward: %w", err)
	}
	return data, nil
}

// Decode never fails: goka stops the processor on a codec error, and a
// record another client wrote to the loop topic must not stop it. What
// cannot be read comes back as unreadable, which the callback skips and
// reports.
func (forwardCodec) Decode(data []byte) (any, error) {
	var f forward
	if err := json.Unmarshal(data, &f); err != nil {
		return unreadable{fmt.Errorf("decode forward from %q: %w", truncate(data, 64), err)}, nil
	}
	if f.Partition < 0 || f.Offset < 0 {
		return unreadable{fmt.Errorf("decode forward from %q: no partition or offset", truncate(data, 64))}, nil
	}
	return &f, nil
}

// unreadable stands for a value a codec could not decode.
type unreadable struct{ err error }

// tableCodec is the processor's codec of the group table: userCodec,
// except that a value it cannot read comes back as unreadable instead of
// an error, so that a value another client wrote for one user does not
// stop the counting of all. The view keeps userCodec: it answers 500 for
// such a user.
type tableCodec struct{ userCodec }

func (c tableCodec) Decode(data []byte) (any, error) {
	v, err := c.userCodec.Decode(data)
	if err != nil {
		return unreadable{err}, nil
	}
	return v, nil
}
