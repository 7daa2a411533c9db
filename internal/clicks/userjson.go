package clicks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// The JSON of a User, written and read by hand for speed; what UserCodec
// writes and reads is exactly what encoding/json would.

// encodeUser writes u byte for byte as json.Marshal does. Every click is
// a decode and an encode in the processor and a decode in the view, and
// encoding/json's reflection was an eighth of the program's CPU at full
// speed, so the usual shapes are written by hand; FuzzUserCodec checks
// them against encoding/json.
func encodeUser(u *User) ([]byte, error) {
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
		b = appendOffsets(append(b, `,"Forwarded":`...), u.Forwarded)
	}
	return append(b, '}'), nil
}

// appendOffsets writes o as json.Marshal writes a map[int32]int64: an
// object with the partitions as keys, sorted as strings ("10" before
// "3").
func appendOffsets(b []byte, o Offsets) []byte {
	if o == nil {
		return append(b, "null"...)
	}
	sorted := o
	if len(o) > 1 && !slices.IsSortedFunc(o, comparePartitionStrings) {
		sorted = slices.SortedFunc(slices.Values(o), comparePartitionStrings)
	}
	b = append(b, '{')
	for i, po := range sorted {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(po.Partition), 10)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, po.Offset, 10)
	}
	return append(b, '}')
}

// comparePartitionStrings orders by partition written out, as
// encoding/json orders a map's keys.
func comparePartitionStrings(x, y PartitionOffset) int {
	var bx, by [12]byte
	return bytes.Compare(strconv.AppendInt(bx[:0], int64(x.Partition), 10), strconv.AppendInt(by[:0], int64(y.Partition), 10))
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
		u.Forwarded = Offsets{}
		scanForwarded(forwarded, u.Forwarded.Set)
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
