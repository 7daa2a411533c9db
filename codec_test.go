package main

import (
	"strings"
	"testing"
)

func TestUserCodecRoundTrip(t *testing.T) {
	var c userCodec
	for _, clicks := range []int{0, 1, 153, 1 << 40} {
		data, err := c.Encode(&user{Clicks: clicks, Offset: int64(clicks) - 1})
		if err != nil {
			t.Fatalf("Encode(%d): %v", clicks, err)
		}
		v, err := c.Decode(data)
		if err != nil {
			t.Fatalf("Decode(%s): %v", data, err)
		}
		u, ok := v.(*user)
		if !ok {
			t.Fatalf("Decode(%s) = %T, want *user", data, v)
		}
		if u.Clicks != clicks {
			t.Errorf("round trip of %d gave %d", clicks, u.Clicks)
		}
	}
}

func TestUserCodecKeepsOffsetAndTopicID(t *testing.T) {
	in := &user{Clicks: 153, Offset: 1520, TopicID: "a1b2"}
	data, err := userCodec{}.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), `{"Clicks":153,"Offset":1520,"TopicID":"a1b2"}`; got != want {
		t.Errorf("Encode = %s, want %s", got, want)
	}
	out, err := userCodec{}.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if *out.(*user) != *in {
		t.Errorf("round trip gave %+v, want %+v", out, in)
	}
}

// A table written by the original example holds only the count.
func TestUserCodecReadsOriginalTable(t *testing.T) {
	v, err := userCodec{}.Decode([]byte(`{"Clicks":153}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *v.(*user), (user{Clicks: 153, Offset: -1}); got != want {
		t.Errorf("Decode = %+v, want %+v (no offset known)", got, want)
	}
}

func TestUserCodecEncodeWrongType(t *testing.T) {
	for _, v := range []any{user{Clicks: 1}, "user", 42, nil, (*user)(nil)} {
		if _, err := (userCodec{}).Encode(v); err == nil {
			t.Errorf("Encode(%#v) succeeded, want an error", v)
		} else if !strings.Contains(err.Error(), "encode user") {
			t.Errorf("Encode(%#v) error %q does not say what failed", v, err)
		}
	}
}

func TestUserCodecDecodeBadJSON(t *testing.T) {
	for _, in := range []string{"", "{", "not json", `{"Clicks":"many"}`, `[1,2]`, strings.Repeat("x", 1000)} {
		v, err := (userCodec{}).Decode([]byte(in))
		if err == nil {
			t.Errorf("Decode(%q) = %v, want an error", in, v)
			continue
		}
		if len(err.Error()) > 200 {
			t.Errorf("Decode error is %d bytes long; bad input should be truncated", len(err.Error()))
		}
	}
}
