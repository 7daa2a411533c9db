package clicks

import (
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUserCodecRoundTrip(t *testing.T) {
	var c UserCodec
	for _, clicks := range []int{0, 1, 153, 1 << 40} {
		data, err := c.Encode(&User{Clicks: clicks, Offset: int64(clicks) - 1})
		if err != nil {
			t.Fatalf("Encode(%d): %v", clicks, err)
		}
		v, err := c.Decode(data)
		if err != nil {
			t.Fatalf("Decode(%s): %v", data, err)
		}
		u, ok := v.(*User)
		if !ok {
			t.Fatalf("Decode(%s) = %T, want *User", data, v)
		}
		if u.Clicks != clicks {
			t.Errorf("round trip of %d gave %d", clicks, u.Clicks)
		}
	}
}

func TestUserCodecKeepsOffsetAndTopicID(t *testing.T) {
	in := &User{Clicks: 153, Offset: 1520, TopicID: "a1b2"}
	data, err := UserCodec{}.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), `{"Clicks":153,"Offset":1520,"TopicID":"a1b2"}`; got != want {
		t.Errorf("Encode = %s, want %s", got, want)
	}
	out, err := UserCodec{}.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip gave %+v, want %+v", out, in)
	}
}

// A user with clicks forwarded from other partitions keeps, per
// partition, the offset of the last one counted.
func TestUserCodecKeepsForwarded(t *testing.T) {
	in := &User{Clicks: 7, Offset: 40, TopicID: "a1b2", Forwarded: Offsets{{3, 17}, {10, 2}}}
	data, err := UserCodec{}.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), `{"Clicks":7,"Offset":40,"TopicID":"a1b2","Forwarded":{"10":2,"3":17}}`; got != want {
		t.Errorf("Encode = %s, want %s", got, want)
	}
	out, err := UserCodec{}.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip gave %+v, want %+v", out, in)
	}
	if got := ClicksIn(data); got != 7 {
		t.Errorf("ClicksIn = %d, want 7", got)
	}
}

// A table written by the original example holds only the count.
func TestUserCodecReadsOriginalTable(t *testing.T) {
	v, err := UserCodec{}.Decode([]byte(`{"Clicks":153}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *v.(*User), (User{Clicks: 153, Offset: -1}); !reflect.DeepEqual(got, want) {
		t.Errorf("Decode = %+v, want %+v (no offset known)", got, want)
	}
}

func TestUserCodecEncodeWrongType(t *testing.T) {
	for _, v := range []any{User{Clicks: 1}, "user", 42, nil, (*User)(nil)} {
		if _, err := (UserCodec{}).Encode(v); err == nil {
			t.Errorf("Encode(%#v) succeeded, want an error", v)
		} else if !strings.Contains(err.Error(), "encode user") {
			t.Errorf("Encode(%#v) error %q does not say what failed", v, err)
		}
	}
}

func TestUserCodecDecodeBadJSON(t *testing.T) {
	for _, in := range []string{"", "{", "not json", `{"Clicks":"many"}`, `[1,2]`, strings.Repeat("x", 1000)} {
		v, err := (UserCodec{}).Decode([]byte(in))
		if err == nil {
			t.Errorf("Decode(%q) = %v, want an error", in, v)
			continue
		}
		if len(err.Error()) > 200 {
			t.Errorf("Decode error is %d bytes long; bad input should be truncated", len(err.Error()))
		}
	}
}

// The hand-written codec agrees with encoding/json: Encode writes what
// json.Marshal writes, and Decode reads any input as json.Unmarshal does
// (the same user, or an error for the same inputs).
func FuzzUserCodec(f *testing.F) {
	for _, seed := range []string{
		`{"Clicks":153}`, `{"Clicks":153,"Offset":1520}`, `{"Clicks":1,"Offset":-1,"TopicID":"q1XvLl3bTWC8tYTqr6Bemw"}`,
		`{"Clicks":0,"Offset":0}`, `{"Clicks":-5,"Offset":9223372036854775807}`, `{"Clicks":01}`, `{"Clicks":1.5}`,
		`{"Clicks":1e3}`, `{"Clicks":99999999999999999999}`, `{"clicks":7}`, `{ "Clicks":1}`, `{"Clicks":1,"Offset":2,"Offset":3}`,
		`{"Clicks":1,"TopicID":"x"}`, `{"Clicks":1,"Offset":2,"TopicID":"a\"b"}`, `{"Clicks":1,"Offset":2,"TopicID":"é"}`,
		`{"Clicks":1}x`, `null`, ``, `{`, `{"Clicks":-}`, `{"Clicks":-0}`,
		`{"Clicks":999999999999999999}`, `{"Clicks":-999999999999999999}`, `{"Clicks":1,"Offset":-9223372036854775808}`,
		`{"Clicks":1,"Offset":9223372036854775808}`, `{"Clicks":1,"Offset":-9223372036854775809}`,
		`{"Clicks":2,"Offset":5,"Forwarded":{"3":17}}`, `{"Clicks":2,"Offset":5,"TopicID":"x","Forwarded":{"3":17,"10":1}}`,
		`{"Clicks":2,"Forwarded":{"x":1}}`, `{"Clicks":2,"Forwarded":{}}`, `{"Clicks":2,"Forwarded":null}`,
		`{"Clicks":2,"Offset":1,"Forwarded":{"3":1},"Forwarded":null}`, `{"Clicks":2,"Forwarded":{"3":1,"3":2,"-1":0}}`,
	} {
		f.Add([]byte(seed), int64(len(seed)), int64(-len(seed)), seed, int32(len(seed)%12-1), int64(len(seed)*7))
	}
	f.Fuzz(func(t *testing.T, data []byte, clicks, offset int64, id string, from int32, fromOffset int64) {
		// Decode against json.Unmarshal, into a User with a map for the
		// offsets.
		got, gotErr := new(UserCodec).Decode(data)
		want := mapUser{Offset: -1}
		wantErr := json.Unmarshal(data, &want)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("Decode(%q): error %v, encoding/json: %v", data, gotErr, wantErr)
		}
		if gotErr == nil {
			u := got.(*User)
			if m := asMapUser(u); !reflect.DeepEqual(m, want) {
				t.Fatalf("Decode(%q) = %+v, encoding/json: %+v", data, m, want)
			}
			if !slices.IsSortedFunc(u.Forwarded, func(x, y PartitionOffset) int { return cmp.Compare(x.Partition, y.Partition) }) ||
				len(u.Forwarded) != len(want.Forwarded) {
				t.Fatalf("Decode(%q): offsets %v, want one for each partition, in order", data, u.Forwarded)
			}
		}
		// The summary's count reader agrees: the count, or 0 for an error.
		if wantClicks := int64(want.Clicks); wantErr != nil {
			if got := ClicksIn(data); got != 0 {
				t.Fatalf("ClicksIn(%q) = %d, want 0 (not a user)", data, got)
			}
		} else if got := ClicksIn(data); got != wantClicks {
			t.Fatalf("ClicksIn(%q) = %d, encoding/json: %d", data, got, wantClicks)
		}
		// Encode against json.Marshal, and back.
		u := &User{Clicks: int(clicks), Offset: offset, TopicID: id}
		if from >= 0 {
			// Partitions whose order as strings differs from their order as numbers.
			u.Forwarded.Set(from, fromOffset)
			u.Forwarded.Set(from/2+10, offset)
			u.Forwarded.Set(-from, clicks)
		}
		enc, err := new(UserCodec).Encode(u)
		if err != nil {
			t.Fatal(err)
		}
		if std, _ := json.Marshal(asMapUser(u)); string(enc) != string(std) {
			t.Fatalf("Encode(%+v) = %s, json.Marshal: %s", *u, enc, std)
		}
		back, err := new(UserCodec).Decode(enc)
		if err != nil || !reflect.DeepEqual(back, u) {
			if utf8.ValidString(id) {
				t.Fatalf("Decode(Encode(%+v)) = %v, %v", *u, back, err)
			}
		}
	})
}

// mapUser is User with its offsets in a map, as encoding/json writes and
// reads a map: Offsets must do the same.
type mapUser struct {
	Clicks    int
	Offset    int64
	TopicID   string          `json:",omitempty"`
	Forwarded map[int32]int64 `json:",omitempty"`
}

func asMapUser(u *User) mapUser {
	return mapUser{Clicks: u.Clicks, Offset: u.Offset, TopicID: u.TopicID, Forwarded: u.Forwarded.Map()}
}

// encoding/json writes and reads Offsets as a map (the hand-written codec
// falls back on it for topic IDs that need escaping).
func TestOffsetsJSONIsAMap(t *testing.T) {
	u := &User{Clicks: 2, Offset: 5, TopicID: "a\"b", Forwarded: Offsets{{-3, 1}, {3, 17}, {10, 2}}}
	got, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(asMapUser(u))
	if string(got) != string(want) {
		t.Fatalf("json.Marshal = %s, of a map: %s", got, want)
	}
	var back User
	if err := json.Unmarshal(got, &back); err != nil || !reflect.DeepEqual(&back, u) {
		t.Fatalf("json.Unmarshal(%s) = %+v, %v; want %+v", got, back, err, u)
	}
}

func TestClicksIn(t *testing.T) {
	for value, want := range map[string]int64{`{"Clicks":153}`: 153, `{"Clicks":2,"Offset":9}`: 2, `null`: 0, `nope`: 0, ``: 0} {
		if got := ClicksIn([]byte(value)); got != want {
			t.Errorf("ClicksIn(%q) = %d, want %d", value, got, want)
		}
	}
	b, _ := json.Marshal(&User{Clicks: 9, Offset: 3})
	if got := ClicksIn(b); got != 9 {
		t.Errorf("ClicksIn(%s) = %d, want 9", b, got)
	}
}
