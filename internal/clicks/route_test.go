package clicks

import (
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// KeyPartition agrees with sarama's hash partitioner over goka's default
// hasher, which goka's emitter, view and table writes use.
func FuzzKeyPartition(f *testing.F) {
	for _, key := range []string{"user-0", "user-3", "", "é", "\xff\xfe", strings.Repeat("k", 300), "test-0a1b2c3d-user-7"} {
		for _, n := range []int32{1, 2, 10, 100, 1000} {
			f.Add(key, n)
		}
	}
	f.Fuzz(func(t *testing.T, key string, n int32) {
		if n < 1 {
			return
		}
		want, err := sarama.NewCustomHashPartitioner(goka.DefaultHasher())(string(Topic)).
			Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, n)
		if err != nil {
			t.Fatal(err)
		}
		if got := KeyPartition(key, n); got != want {
			t.Fatalf("KeyPartition(%q, %d) = %d, sarama: %d", key, n, got, want)
		}
	})
}

// testCounter is a counter whose keys all live in partition 0.
func testCounter(topicID string) *Counter {
	c := NewCounter(nil, topicID, 1, nil, slog.New(slog.DiscardHandler))
	return c
}

// A click outside its key's partition is forwarded, with where it was and
// the topic ID, and not counted there; its value goes along only where
// the processor prints [proc] lines.
func TestClickOutsideItsPartitionIsForwarded(t *testing.T) {
	const id = "q1XvLl3bTWC8tYTqr6Bemw"
	for _, tc := range []struct {
		name string
		out  io.Writer
		want *forward
	}{
		{"quiet", nil, &forward{Partition: 4, Offset: 17, TopicID: id}},
		{"printing", io.Discard, &forward{Partition: 4, Offset: 17, TopicID: id, Value: "a click"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCounter(tc.out, id, 1, nil, slog.New(slog.DiscardHandler))
			ctx := &fakeContext{partition: 4, offset: 17, value: &User{Clicks: 99}}
			c.click(ctx, "a click")
			if ctx.failed != nil {
				t.Fatal(ctx.failed)
			}
			if ctx.set != nil {
				t.Errorf("the click was counted in partition 4: SetValue(%+v)", ctx.set)
			}
			if !reflect.DeepEqual(ctx.looped, tc.want) {
				t.Errorf("Loopback(%+v), want %+v", ctx.looped, tc.want)
			}
		})
	}
}

// Forwarded clicks are counted once each: the value keeps, per partition
// they came from, the offset of the last one counted.
func TestForwardedClickCountedOnce(t *testing.T) {
	tests := []struct {
		name       string
		stored     *User // nil: no value yet
		fwd        forward
		wantClicks int
		want       *User // the value written; nil: as stored
	}{
		{"first click of a user", nil, forward{Partition: 3, Offset: 17, TopicID: "t1"}, 1,
			&User{Clicks: 1, Offset: -1, TopicID: "t1", Forwarded: Offsets{{3, 17}}}},
		{"next from the same partition", &User{Clicks: 5, Offset: 40, TopicID: "t1", Forwarded: Offsets{{3, 17}}}, forward{Partition: 3, Offset: 18, TopicID: "t1"}, 6,
			&User{Clicks: 6, Offset: 40, TopicID: "t1", Forwarded: Offsets{{3, 18}}}},
		{"forwarded again after a crash", &User{Clicks: 5, Offset: 40, TopicID: "t1", Forwarded: Offsets{{3, 17}}}, forward{Partition: 3, Offset: 17, TopicID: "t1"}, 5, nil},
		{"an older one again", &User{Clicks: 5, Offset: 40, TopicID: "t1", Forwarded: Offsets{{3, 17}}}, forward{Partition: 3, Offset: 2, TopicID: "t1"}, 5, nil},
		{"a lower offset of another partition", &User{Clicks: 5, Offset: 40, TopicID: "t1", Forwarded: Offsets{{3, 17}}}, forward{Partition: 5, Offset: 2, TopicID: "t1"}, 6,
			&User{Clicks: 6, Offset: 40, TopicID: "t1", Forwarded: Offsets{{3, 17}, {5, 2}}}},
		{"not held back by the own partition's offset", &User{Clicks: 5, Offset: 40, TopicID: "t1"}, forward{Partition: 3, Offset: 2, TopicID: "t1"}, 6,
			&User{Clicks: 6, Offset: 40, TopicID: "t1", Forwarded: Offsets{{3, 2}}}},
		{"topic created again", &User{Clicks: 5, Offset: 40, TopicID: "t0", Forwarded: Offsets{{3, 17}}}, forward{Partition: 3, Offset: 0, TopicID: "t1"}, 6,
			&User{Clicks: 6, Offset: -1, TopicID: "t1", Forwarded: Offsets{{3, 0}}}},
		{"table of the previous version", &User{Clicks: 5, Offset: 40, TopicID: "t1"}, forward{Partition: 1, Offset: 0, TopicID: "t1"}, 6,
			&User{Clicks: 6, Offset: 40, TopicID: "t1", Forwarded: Offsets{{1, 0}}}},
		{"table of the original", &User{Clicks: 152, Offset: -1}, forward{Partition: 1, Offset: 9}, 153,
			&User{Clicks: 153, Offset: -1, Forwarded: Offsets{{1, 9}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := &fakeContext{}
			if tc.stored != nil {
				stored := *tc.stored // counted is changed in place
				stored.Forwarded = slices.Clone(tc.stored.Forwarded)
				ctx.value = &stored
			}
			want := tc.want
			if want == nil {
				want = tc.stored
			}
			fwd := tc.fwd
			testCounter("t1").forwarded(ctx, &fwd)
			if ctx.failed != nil {
				t.Fatal(ctx.failed)
			}
			got, ok := ctx.set.(*User)
			if !ok {
				t.Fatalf("value not written: SetValue(%v)", ctx.set)
			}
			if got.Clicks != tc.wantClicks {
				t.Errorf("clicks %d, want %d", got.Clicks, tc.wantClicks)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("wrote %+v, want %+v", got, want)
			}
		})
	}
}

// After user-clicks was deleted and created again, the loop topic may
// still hold forwards of the old incarnation; a read of it from its start
// (the start-up repair) must not count them again, nor reset the user's
// offsets to the old incarnation's, nor forward them on. Forwards without
// a topic ID (an older clicks) and a counter that knows none still count.
func TestStaleForwardIsSkipped(t *testing.T) {
	stored := &User{Clicks: 5, Offset: 40, TopicID: "t2", Forwarded: Offsets{{3, 17}}}
	for _, tc := range []struct {
		name, counter, fwd string
		partition          int32
		wantSkip           bool
	}{
		{"old incarnation", "t2", "t1", 0, true},
		{"old incarnation, outside its partition", "t2", "t1", 1, true},
		{"this incarnation", "t2", "t2", 0, false},
		{"forward without topic ID", "t2", "", 0, false},
		{"counter without topic ID", "", "t1", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := &recordedEvents{skipped: map[string]int{}}
			c := NewCounter(nil, tc.counter, 2, events, slog.New(slog.DiscardHandler))
			value := *stored
			value.Forwarded = Offsets{{3, 17}}
			ctx := &fakeContext{value: &value, partition: tc.partition}
			c.forwarded(ctx, &forward{Partition: 3, Offset: 18, TopicID: tc.fwd})
			if ctx.failed != nil {
				t.Fatal(ctx.failed)
			}
			if !tc.wantSkip {
				if events.skipped[SkipStaleForward] != 0 {
					t.Errorf("skipped as stale: %v", events.skipped)
				}
				// The user is written with the counter's topic ID.
				if got, ok := ctx.set.(*User); tc.counter != "" && tc.fwd != "" && (!ok || got.TopicID != tc.counter) {
					t.Errorf("wrote %+v, want TopicID %q", ctx.set, tc.counter)
				}
				return
			}
			if events.skipped[SkipStaleForward] != 1 || events.counted != 0 || events.forwarded != 0 {
				t.Errorf("events %+v, want one %s skip and nothing counted or forwarded", events, SkipStaleForward)
			}
			if ctx.set != nil || ctx.looped != nil {
				t.Errorf("wrote %+v, looped %+v; want nothing", ctx.set, ctx.looped)
			}
			if !reflect.DeepEqual(&value, stored) {
				t.Errorf("user changed to %+v", value)
			}
		})
	}
}

// A direct click after forwarded ones keeps what the forwards left.
func TestDirectClickKeepsForwardedOffsets(t *testing.T) {
	ctx := &fakeContext{offset: 41, value: &User{Clicks: 5, Offset: 40, TopicID: "t1", Forwarded: Offsets{{3, 17}}}}
	testCounter("t1").click(ctx, "click")
	want := &User{Clicks: 6, Offset: 41, TopicID: "t1", Forwarded: Offsets{{3, 17}}}
	if !reflect.DeepEqual(ctx.set, want) {
		t.Errorf("wrote %+v, want %+v", ctx.set, want)
	}
}

// What another client may write where clicks reads: a table value or a
// loop record that cannot be read, a loop record in the wrong partition.
// None stops the processor; each is skipped and counted by its reason, or
// sent on to the right partition.
func TestForeignRecordsDoNotStopTheProcessor(t *testing.T) {
	bad, err := tableCodec{}.Decode([]byte("not json"))
	if err != nil {
		t.Fatalf("the processor's table codec failed: %v", err)
	}
	badFwd, err := forwardCodec{}.Decode([]byte(`{"Partition":-1}`))
	if err != nil {
		t.Fatalf("the loop codec failed: %v", err)
	}
	events := &recordedEvents{skipped: map[string]int{}}
	c := NewCounter(nil, "t1", 1, events, slog.New(slog.DiscardHandler))

	click := &fakeContext{value: bad, offset: 3}
	c.click(click, "click")
	fwd := &fakeContext{value: bad}
	c.forwarded(fwd, &forward{Partition: 2, Offset: 5})
	loop := &fakeContext{}
	c.forwarded(loop, badFwd)
	nullLoop := &fakeContext{}
	c.forwarded(nullLoop, nil)
	elsewhere := &fakeContext{partition: 7}
	c.forwarded(elsewhere, &forward{Partition: 2, Offset: 5})

	for i, ctx := range []*fakeContext{click, fwd, loop, nullLoop, elsewhere} {
		if ctx.failed != nil || ctx.set != nil {
			t.Errorf("case %d: failed %v, wrote %v; want neither", i, ctx.failed, ctx.set)
		}
	}
	if want := (&forward{Partition: 2, Offset: 5}); !reflect.DeepEqual(elsewhere.looped, want) {
		t.Errorf("a forward in the wrong partition was sent on as %+v, want %+v", elsewhere.looped, want)
	}
	if want := map[string]int{SkipUnreadableValue: 2, SkipUnreadableForward: 2}; !reflect.DeepEqual(events.skipped, want) {
		t.Errorf("skipped %v, want %v", events.skipped, want)
	}
	if events.forwarded != 1 || events.counted != 0 {
		t.Errorf("forwarded %d, counted %d; want 1 and 0", events.forwarded, events.counted)
	}
}

func TestForwardCodecRoundTrip(t *testing.T) {
	in := &forward{Partition: 3, Offset: 17, TopicID: "q1XvLl3bTWC8tYTqr6Bemw", Value: "2026-11-25 12:00:00"}
	data, err := forwardCodec{}.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := forwardCodec{}.Decode(data)
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("round trip of %+v gave %+v, %v", in, out, err)
	}
	for _, v := range []any{forward{}, (*forward)(nil), "x"} {
		if _, err := (forwardCodec{}).Encode(v); err == nil {
			t.Errorf("Encode(%#v) succeeded, want an error", v)
		}
	}
	for _, data := range []string{"", "x", `{"Partition":"a"}`, `{"Offset":-2}`, `{}`, `{"Partition":1}`, `{"Partition":-1,"Offset":2}`} {
		if v, err := (forwardCodec{}).Decode([]byte(data)); err != nil {
			t.Errorf("Decode(%q) failed: %v; want unreadable", data, err)
		} else if _, ok := v.(unreadable); !ok {
			t.Errorf("Decode(%q) = %#v, want unreadable", data, v)
		}
	}
}

// recordedEvents counts the events it hears of.
type recordedEvents struct {
	emitted, counted, forwarded int
	skipped                     map[string]int
}

func (r *recordedEvents) Emitted(error)         { r.emitted++ }
func (r *recordedEvents) Counted()              { r.counted++ }
func (r *recordedEvents) Forwarded()            { r.forwarded++ }
func (r *recordedEvents) Skipped(reason string) { r.skipped[reason]++ }

// The hand-written forward codec agrees with encoding/json: Encode writes
// what json.Marshal writes, and Decode reads what json.Unmarshal reads
// (or, for what is not a forward, unreadable).
func FuzzForwardCodec(f *testing.F) {
	for _, seed := range []string{
		`{"Partition":3,"Offset":17}`, `{"Partition":3,"Offset":17,"TopicID":"q1XvLl3bTWC8tYTqr6Bemw","Value":"2026-11-25 12:00:00.1 +0000 UTC"}`,
		`{"Partition":3,"Offset":17,"Value":"a \\"quoted\\" <value>"}`, `{"Partition":3,"Offset":17,"Value":"é"}`, `{"Partition":3}`,
		`{"Partition":2147483648,"Offset":1}`, `{"Partition":3,"Offset":17,"TopicID":"x","TopicID":"y"}`, `{"Value":"v","Partition":1,"Offset":1}`,
		`{"Partition":3,"Offset":17}x`, `{"Partition":03,"Offset":17}`, `null`, ``,
	} {
		f.Add([]byte(seed), int32(len(seed)%12), int64(len(seed)), seed, seed)
	}
	f.Fuzz(func(t *testing.T, data []byte, p int32, o int64, id, value string) {
		got, err := forwardCodec{}.Decode(data)
		if err != nil {
			t.Fatalf("Decode(%q): %v", data, err)
		}
		var want struct {
			Partition *int32
			Offset    *int64
			TopicID   string
			Value     string
		}
		wantErr := json.Unmarshal(data, &want)
		if wantErr != nil || want.Partition == nil || want.Offset == nil || *want.Partition < 0 || *want.Offset < 0 {
			if _, ok := got.(unreadable); !ok {
				t.Fatalf("Decode(%q) = %+v, want unreadable (encoding/json: %v)", data, got, wantErr)
			}
		} else if w := (&forward{Partition: *want.Partition, Offset: *want.Offset, TopicID: want.TopicID, Value: want.Value}); !reflect.DeepEqual(got, w) {
			t.Fatalf("Decode(%q) = %+v, encoding/json: %+v", data, got, w)
		}

		in := &forward{Partition: p, Offset: o, TopicID: id, Value: value}
		enc, err := forwardCodec{}.Encode(in)
		if err != nil {
			t.Fatal(err)
		}
		if std, _ := json.Marshal(in); string(enc) != string(std) {
			t.Fatalf("Encode(%+v) = %s, json.Marshal: %s", *in, enc, std)
		}
		back, _ := forwardCodec{}.Decode(enc)
		if p >= 0 && o >= 0 && utf8.ValidString(id) && utf8.ValidString(value) && !reflect.DeepEqual(back, in) {
			t.Fatalf("Decode(Encode(%+v)) = %+v", *in, back)
		}
	})
}

// What the start-up repair reads from stored values and forwards: the
// offsets counted, of the current incarnation only, and which of two
// values of a user is newer.
func TestRepairReadsValuesAndForwards(t *testing.T) {
	value := []byte(`{"Clicks":7,"Offset":41,"TopicID":"id-1","Forwarded":{"3":12}}`)
	if got := ReadStored(value, "id-1"); !got.Readable || got.Home != 41 || got.Forwarded[3] != 12 || len(got.Forwarded) != 1 {
		t.Errorf("ReadStored = %+v, want readable, home 41, forwarded map[3:12]", got)
	}
	if got := ReadStored(value, "id-2"); !got.Readable || got.Home != -1 || got.Forwarded != nil {
		t.Errorf("ReadStored of another incarnation = %+v, want readable and no offsets", got)
	}
	if got := ReadStored([]byte("not a count"), "id-1"); got.Readable || got.Home != -1 {
		t.Errorf("ReadStored of other bytes = %+v, want unreadable", got)
	}
	// goka's 2-clicks' value says nothing of what it counted; one of
	// another incarnation, or where the brokers tell no topic IDs, does.
	if got := ReadStored([]byte(`{"Clicks":40}`), "id-1"); !got.Readable || !got.Legacy || got.Home != -1 {
		t.Errorf("ReadStored of the original's value = %+v, want readable and legacy", got)
	}
	for _, v := range []string{`{"Clicks":7,"Offset":41,"TopicID":"id-2"}`, `{"Clicks":7,"Offset":41}`} {
		if got := ReadStored([]byte(v), "id-1"); got.Legacy {
			t.Errorf("ReadStored(%s) = %+v, want not legacy", v, got)
		}
	}
	older := []byte(`{"Clicks":6,"Offset":40,"TopicID":"id-1"}`)
	if !NewerValue(value, older) || NewerValue(older, value) || NewerValue(value, []byte("x")) || NewerValue([]byte("x"), older) {
		t.Error("NewerValue: want only the value with more clicks newer, and nothing unreadable replaced or replacing")
	}
	fwd, err := forwardCodec{}.Encode(&forward{Partition: 3, Offset: 12, TopicID: "id-1", Value: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if p, o, ok := ForwardedFrom(fwd, "id-1"); !ok || p != 3 || o != 12 {
		t.Errorf("ForwardedFrom = %d, %d, %v; want 3, 12, true", p, o, ok)
	}
	if _, _, ok := ForwardedFrom(fwd, "id-2"); ok {
		t.Error("a forward of another incarnation read as one of this")
	}
	if _, _, ok := ForwardedFrom(nil, "id-1"); ok {
		t.Error("a filler read as a forward")
	}
}
