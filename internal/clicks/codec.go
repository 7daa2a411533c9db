package clicks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
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
	Forwarded map[int32]int64 `json:",omitempty"`
}

// lastCounted is the offset of the last click counted from partition from
// (-1: the key's own partition); -1 if none was.
func (u *User) lastCounted(from int32) int64 {
	if from < 0 {
		return u.Offset
	}
	if o, ok := u.Forwarded[from]; ok {
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
	if u.Forwarded == nil {
		u.Forwarded = make(map[int32]int64, 1)
	}
	u.Forwarded[from] = offset
}

// UserCodec encodes a *User as JSON for the group table.
//
// goka stops a processor or view on a codec error (fail early, so that a
// table is never written with mixed codecs), so errors here must say
// clearly what was wrong.
type UserCodec struct{}

// Encode turns a *User into JSON, byte for byte what json.Marshal
// writes. Every click is a decode and an encode in the processor and a
// decode in the view, and encoding/json's reflection was an eighth of the
// program's CPU at full speed, so the usual shapes are written by hand;
// FuzzUserCodec checks them against encoding/json.
func (UserCodec) Encode(value any) ([]byte, error) {
	u, ok := value.(*User)
	if !ok {
		return nil, fmt.Errorf("encode user: got %T, want *clicks.User", value)
	}
	if u == nil {
		return nil, fmt.Errorf("encode user: nil *clicks.User")
	}
	if !plainID(u.TopicID) {
		data, err := json.Marshal(u)
		if err != nil {
			return nil, fmt.Errorf("encode user: %w", err)
		}
		return data, nil
	}
	b := make([]byte, 0, 64+len(u.TopicID)+24*len(u.Forwarded))
	b = append(b, `{"Clicks":`...)
	b = strconv.AppendInt(b, int64(u.Clicks), 10)
	b = append(b, `,"Offset":`...)
	b = strconv.AppendInt(b, u.Offset, 10)
	if u.TopicID != "" {
		b = append(b, `,"TopicID":"`...)
		b = append(b, u.TopicID...)
		b = append(b, '"')
	}
	if len(u.Forwarded) > 0 {
		b = appendForwarded(append(b, `,"Forwarded":`...), u.Forwarded)
	}
	return append(b, '}'), nil
}

// appendForwarded writes m as json.Marshal does: an object with the
// partitions as keys, sorted as strings ("10" before "3").
func appendForwarded(b []byte, m map[int32]int64) []byte {
	var stack [16]int32
	keys := stack[:0]
	for p := range m {
		keys = append(keys, p)
	}
	slices.SortFunc(keys, func(x, y int32) int {
		var bx, by [12]byte
		return bytes.Compare(strconv.AppendInt(bx[:0], int64(x), 10), strconv.AppendInt(by[:0], int64(y), 10))
	})
	b = append(b, '{')
	for i, p := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(p), 10)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, m[p], 10)
	}
	return append(b, '}')
}

// plainID tells whether s needs no escaping in a JSON string (topic IDs
// are base64 or hex with dashes).
func plainID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Decode turns JSON from the group table back into a *User.
func (UserCodec) Decode(data []byte) (any, error) {
	u, err := decodeUser(data)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// decodeUser reads what Encode writes, and a table value of the original
// example ({"Clicks":N}), without reflection; anything else goes through
// encoding/json.
func decodeUser(data []byte) (User, error) {
	if u, ok := parseUser(data); ok {
		return u, nil
	}
	u := User{Offset: -1} // stays -1 for a value without Offset
	if err := json.Unmarshal(data, &u); err != nil {
		return User{}, fmt.Errorf("decode user from %q: %w", truncate(data, 64), err)
	}
	return u, nil
}

// parseUser parses {"Clicks":N}, {"Clicks":N,"Offset":M},
// {"Clicks":N,"Offset":M,"TopicID":"id"} and either of the last two with
// ,"Forwarded":{"P":O,...} before the end, exactly, with no spaces; ok is
// false for anything else.
func parseUser(b []byte) (u User, ok bool) {
	clicks, offset, topicID, forwarded, ok := scanUser(b)
	if !ok {
		return u, false
	}
	u = User{Clicks: int(clicks), Offset: offset, TopicID: string(topicID)}
	if forwarded != nil {
		u.Forwarded = make(map[int32]int64)
		scanForwarded(forwarded, func(p int32, o int64) { u.Forwarded[p] = o })
	}
	return u, true
}

// scanUser is parseUser without building the user: the topic ID and the
// forwarded offsets stay in b, so that a reader that wants only the count
// (the page's summary reads two values per click) allocates nothing.
func scanUser(b []byte) (clicks, offset int64, topicID, forwarded []byte, ok bool) {
	offset = -1
	b, ok = bytes.CutPrefix(b, []byte(`{"Clicks":`))
	if !ok {
		return 0, 0, nil, nil, false
	}
	if clicks, b, ok = parseInt(b); !ok {
		return 0, 0, nil, nil, false
	}
	if rest, found := bytes.CutPrefix(b, []byte(`,"Offset":`)); found {
		if offset, b, ok = parseInt(rest); !ok {
			return 0, 0, nil, nil, false
		}
		if rest, found := bytes.CutPrefix(b, []byte(`,"TopicID":"`)); found {
			end := bytes.IndexByte(rest, '"')
			if end < 0 || !plainID(string(rest[:end])) {
				return 0, 0, nil, nil, false
			}
			topicID, b = rest[:end], rest[end+1:]
		}
		if rest, found := bytes.CutPrefix(b, []byte(`,"Forwarded":`)); found {
			if b, ok = scanForwarded(rest, nil); !ok {
				return 0, 0, nil, nil, false
			}
			forwarded = rest[:len(rest)-len(b)]
		}
	}
	if len(b) != 1 || b[0] != '}' {
		return 0, 0, nil, nil, false
	}
	return clicks, offset, topicID, forwarded, true
}

// scanForwarded reads {"P":O,...} at the start of b, P an int32 and O an
// int64 without leading zeros, calling set (if not nil) for each pair,
// and returns what follows.
func scanForwarded(b []byte, set func(p int32, o int64)) ([]byte, bool) {
	b, ok := bytes.CutPrefix(b, []byte{'{'})
	if !ok {
		return b, false
	}
	if rest, found := bytes.CutPrefix(b, []byte{'}'}); found {
		return rest, true
	}
	for {
		var p, o int64
		if b, ok = bytes.CutPrefix(b, []byte{'"'}); !ok {
			return b, false
		}
		if p, b, ok = parseInt(b); !ok || p != int64(int32(p)) {
			return b, false
		}
		if b, ok = bytes.CutPrefix(b, []byte(`":`)); !ok {
			return b, false
		}
		if o, b, ok = parseInt(b); !ok {
			return b, false
		}
		if set != nil {
			set(int32(p), o)
		}
		if len(b) == 0 {
			return b, false
		}
		switch b[0] {
		case ',':
			b = b[1:]
		case '}':
			return b[1:], true
		default:
			return b, false
		}
	}
}

// parseInt reads a JSON integer (no leading zeros, no fraction or
// exponent) at the start of b.
func parseInt(b []byte) (int64, []byte, bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	var n int64
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		n = n*10 + int64(b[i]-'0')
		i++
	}
	if i == start || (b[start] == '0' && i > start+1) || (i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E')) {
		return 0, b, false
	}
	if i-start > 18 { // may have overflowed: let strconv range-check it
		var err error
		if n, err = strconv.ParseInt(string(b[:i]), 10, 64); err != nil {
			return 0, b, false
		}
		return n, b[i:], true
	}
	if start > 0 {
		n = -n
	}
	return n, b[i:], true
}

// ClicksIn reads the count from a stored value without building the
// user (the page's summary reads two values per click); 0 for one that is not a
// user's JSON.
func ClicksIn(value []byte) int64 {
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
