package clicks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// KeyPartition is the partition of key among n, as goka's emitter, view
// and table writes choose it: sarama's hash partitioner over goka's
// default hasher, FNV-1a, with its absolute value of the signed sum.
// Written out because the processor asks for every click, and sarama's
// partitioner allocates a message and a hasher each time;
// TestKeyPartitionIsGokas checks it against sarama's.
func KeyPartition(key string, n int32) int32 {
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
// forward written again after a crash is recognised, and, where the
// processor prints [proc] lines, the click's value, shortened, for the
// line. The loop topic's key is the click's key.
//
// One is written, stored, fetched and read for 9 in 10 clicks of kcat or a
// Java client: without the value, the forward of a click at offset 123456
// is 66 bytes; with a 20-byte value, 97.
type forward struct {
	Partition int32  // of the click in user-clicks
	Offset    int64  // of the click in that partition
	TopicID   string `json:",omitempty"` // the incarnation of user-clicks
	Value     string `json:",omitempty"` // the click's value, at most 100 bytes, where [proc] lines are printed
}

// forwardCodec is the loop topic's codec: JSON, written and read by hand
// in the usual shape (a topic ID and a value that need no escaping), as
// UserCodec is, for the same reason: encoding/json's reflection was a
// quarter of the CPU of counting forwarded clicks. FuzzForwardCodec checks
// it against encoding/json.
type forwardCodec struct{}

func (forwardCodec) Encode(value any) ([]byte, error) {
	f, ok := value.(*forward)
	if !ok || f == nil {
		return nil, fmt.Errorf("encode forward: got %T, want *main.forward", value)
	}
	if !plainID(f.TopicID) || !plainValue(f.Value) {
		data, err := json.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("encode forward: %w", err)
		}
		return data, nil
	}
	b := make([]byte, 0, 64+len(f.TopicID)+len(f.Value))
	b = append(b, `{"Partition":`...)
	b = strconv.AppendInt(b, int64(f.Partition), 10)
	b = append(b, `,"Offset":`...)
	b = strconv.AppendInt(b, f.Offset, 10)
	if f.TopicID != "" {
		b = append(append(append(b, `,"TopicID":"`...), f.TopicID...), '"')
	}
	if f.Value != "" {
		b = append(append(append(b, `,"Value":"`...), f.Value...), '"')
	}
	return append(b, '}'), nil
}

// plainValue tells whether json.Marshal writes s as it is: printable
// ASCII without the characters it escapes.
func plainValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// parseForward reads what Encode writes by hand, exactly; ok is false for
// anything else.
func parseForward(b []byte) (f forward, ok bool) {
	var p int64
	if b, ok = bytes.CutPrefix(b, []byte(`{"Partition":`)); !ok {
		return f, false
	}
	if p, b, ok = parseInt(b); !ok || p != int64(int32(p)) {
		return f, false
	}
	f.Partition = int32(p)
	if b, ok = bytes.CutPrefix(b, []byte(`,"Offset":`)); !ok {
		return f, false
	}
	if f.Offset, b, ok = parseInt(b); !ok {
		return f, false
	}
	for _, field := range []struct {
		name  string
		to    *string
		plain func(string) bool
	}{{`,"TopicID":"`, &f.TopicID, plainID}, {`,"Value":"`, &f.Value, plainValue}} {
		rest, found := bytes.CutPrefix(b, []byte(field.name))
		if !found {
			continue
		}
		end := bytes.IndexByte(rest, '"')
		if end < 0 || !field.plain(string(rest[:end])) {
			return f, false
		}
		*field.to, b = string(rest[:end]), rest[end+1:]
	}
	return f, len(b) == 1 && b[0] == '}'
}

// Decode never fails: goka stops the processor on a codec error, and a
// record another client wrote to the loop topic must not stop it. What
// cannot be read comes back as unreadable, which the callback skips and
// reports.
func (forwardCodec) Decode(data []byte) (any, error) {
	f, ok := parseForward(data)
	if !ok {
		var raw struct { // pointers tell a missing field from a zero
			Partition *int32
			Offset    *int64
			TopicID   string
			Value     string
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			return unreadable{fmt.Errorf("decode forward from %q: %w", truncate(data, 64), err)}, nil
		}
		if raw.Partition == nil || raw.Offset == nil {
			return unreadable{fmt.Errorf("decode forward from %q: no partition or offset", truncate(data, 64))}, nil
		}
		f = forward{Partition: *raw.Partition, Offset: *raw.Offset, TopicID: raw.TopicID, Value: raw.Value}
	}
	if f.Partition < 0 || f.Offset < 0 {
		return unreadable{fmt.Errorf("decode forward from %q: negative partition or offset", truncate(data, 64))}, nil
	}
	return &f, nil
}

// unreadable stands for a value a codec could not decode.
type unreadable struct{ err error }

// tableCodec is the processor's codec of the group table: UserCodec,
// except that a value it cannot read comes back as unreadable instead of
// an error, so that a value another client wrote for one user does not
// stop the counting of all. The view keeps UserCodec: it answers 500 for
// such a user.
type tableCodec struct{ UserCodec }

func (c tableCodec) Decode(data []byte) (any, error) {
	v, err := c.UserCodec.Decode(data)
	if err != nil {
		return unreadable{err}, nil
	}
	return v, nil
}
