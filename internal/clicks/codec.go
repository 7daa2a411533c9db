package clicks

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
)

// User is the value the processor keeps per key in the group table, as
// JSON: {"Clicks":153,"Offset":1520,"TopicID":"..."}. The view answers
// with the count alone, {"Clicks":153}, exactly as the original.
type User struct {
	Clicks int

	// Offset is the offset of the last click counted from the key's own
	// partition of user-clicks (the one goka's hash gives it, where the
	// emitter writes). Offsets in a partition only grow: a click at or
	// below Offset was delivered again (after a crash or a rebalance) and
	// is not counted twice. -1 when unknown, as in a table written by the
	// original example, which has only Clicks.
	Offset int64

	// TopicID identifies the incarnation of user-clicks that Offset and
	// Forwarded belong to: a topic deleted and created again starts its offsets at
	// zero again. Empty where the broker does not tell topic IDs.
	TopicID string `json:",omitempty"`

	// Forwarded holds, for each other partition of user-clicks that
	// clicks of this user arrived in (written by clients that partition
	// keys differently), the offset of the last click counted from it.
	// Such clicks reach the key's partition through the loop topic, in
	// their partition's order, so these offsets only grow too (see
	// clickCounter). Absent for users whose clicks all came to their own
	// partition, as the emitter's do.
	Forwarded Offsets `json:",omitempty"`
}

// Offsets holds an offset for each of some partitions, sorted by
// partition; in JSON it is an object, {"3":17,"10":2}, exactly as
// encoding/json writes and reads a map[int32]int64. A list and not a map:
// a user's clicks come from few partitions, and a map is built, read and
// written for each click of kcat or a Java client that is counted.
type Offsets []PartitionOffset

// PartitionOffset is an offset in a partition.
type PartitionOffset struct {
	Partition int32
	Offset    int64
}

// Get returns the offset of partition p, if there is one.
func (o Offsets) Get(p int32) (int64, bool) {
	for _, po := range o {
		if po.Partition == p {
			return po.Offset, true
		}
	}
	return 0, false
}

// Set sets the offset of partition p.
func (o *Offsets) Set(p int32, offset int64) {
	i, found := slices.BinarySearchFunc(*o, p, func(po PartitionOffset, p int32) int { return cmp.Compare(po.Partition, p) })
	if found {
		(*o)[i].Offset = offset
		return
	}
	*o = slices.Insert(*o, i, PartitionOffset{p, offset})
}

// Map returns the offsets as a map.
func (o Offsets) Map() map[int32]int64 {
	if o == nil {
		return nil
	}
	m := make(map[int32]int64, len(o))
	for _, po := range o {
		m[po.Partition] = po.Offset
	}
	return m
}

func (o Offsets) MarshalJSON() ([]byte, error) {
	return appendOffsets(nil, o), nil
}

// UnmarshalJSON reads what encoding/json reads into a map[int32]int64,
// the same way.
func (o *Offsets) UnmarshalJSON(data []byte) error {
	var m map[int32]int64
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	if m == nil {
		*o = nil // null, as encoding/json sets a map to nil
		return nil
	}
	if *o == nil {
		*o = Offsets{} // an existing map is added to, as encoding/json does
	}
	for p, offset := range m {
		o.Set(p, offset)
	}
	return nil
}

// lastCounted is the offset of the last click counted from partition from
// (-1: the key's own partition); -1 if none was.
func (u *User) lastCounted(from int32) int64 {
	if from < 0 {
		return u.Offset
	}
	if o, ok := u.Forwarded.Get(from); ok {
		return o
	}
	return -1
}

// setCounted records offset as the last click counted from partition
// from (-1: the key's own partition).
func (u *User) setCounted(from int32, offset int64) {
	if from < 0 {
		u.Offset = offset
		return
	}
	u.Forwarded.Set(from, offset)
}

// UserCodec encodes a *User as JSON for the group table.
//
// goka stops a processor or view on a codec error (fail early, so that a
// table is never written with mixed codecs), so errors here must say
// clearly what was wrong.
type UserCodec struct{}

// Encode turns a *User into JSON, as json.Marshal would.
func (UserCodec) Encode(value any) ([]byte, error) {
	u, ok := value.(*User)
	if !ok {
		return nil, fmt.Errorf("encode user: got %T, want *clicks.User", value)
	}
	if u == nil {
		return nil, fmt.Errorf("encode user: nil *clicks.User")
	}
	return encodeUser(u)
}

// Decode turns JSON from the group table back into a *User.
func (UserCodec) Decode(data []byte) (any, error) {
	u, err := decodeUser(data)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// ClicksIn reads the count from a stored value without building the
// user (the page's summary reads two values per click); 0 for one that is not a
// user's JSON.
func ClicksIn(value []byte) int64 {
	if len(value) == 0 {
		return 0 // a user not stored yet: no error to build
	}
	if clicks, _, _, _, ok := scanUser(value); ok {
		return clicks
	}
	u, err := decodeUser(value)
	if err != nil {
		return 0
	}
	return int64(u.Clicks)
}

// truncate shortens b for an error message, so a huge bad value does not
// flood the log.
func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return append(b[:n:n], "..."...)
}
