package main

import (
	"encoding/json"
	"fmt"
)

// user is the value the processor keeps per key in the group table.
// Its JSON form, {"Clicks":N}, is what the table stores and what the
// view answers, exactly as in the original example.
type user struct {
	Clicks int
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
	var u user
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
