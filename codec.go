package main

import (
	"encoding/json"
	"fmt"
)

// user is the value the processor keeps per key in the group table, as
// JSON: {"Clicks":153,"Offset":1520,"TopicID":"..."}. The view answers
// with the count alone, {"Clicks":153}, exactly as the original.
type user struct {
	Clicks int

	// Offset is the offset in user-clicks of the last click counted. A key
	// always lives in the same partition, so its offsets only grow: a click
	// at or below Offset was delivered again (after a crash or a
	// rebalance) and is not counted twice. -1 when unknown, as in a table
	// written by the original example, which has only Clicks.
	Offset int64

	// TopicID identifies the incarnation of user-clicks that Offset
	// belongs to: a topic deleted and created again starts its offsets at
	// zero again. Empty where the broker does not tell topic IDs.
	TopicID string `json:",omitempty"`
}

// userCodec encodes a *user as JSON for the group table.
//
// goka stops a processor or view on a codec error (fail early, so that a
// table is never written with mixed codecs), so errors here must say
// clearly what was wrong.
type userCodec struct{}

// Encode turns a *user into JSON.
func (userCodec) Encode(value any) ([]byte, error) {
	u, ok := value.(*user)
	if !ok {
		return nil, fmt.Errorf("encode user: got %T, want *main.user", value)
	}
	if u == nil {
		return nil, fmt.Errorf("encode user: nil *main.user")
	}
	data, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("encode user: %w", err)
	}
	return data, nil
}

// Decode turns JSON from the group table back into a *user.
func (userCodec) Decode(data []byte) (any, error) {
	u := user{Offset: -1} // stays -1 for a value without Offset
	if err := json.Unmarshal(data, &u); err != nil {
		return nil, fmt.Errorf("decode user from %q: %w", truncate(data, 64), err)
	}
	return &u, nil
}

// truncate shortens b for an error message, so a huge bad value does not
// flood the log.
func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return append(b[:n:n], "..."...)
}
