package clicks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"clicks/internal/filler"
	"clicks/internal/logs"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
)

// startTestProcessor runs the click processor against goka's tester.
func startTestProcessor(t *testing.T, out *strings.Builder) *tester.Tester {
	t.Helper()
	tt := tester.New(t)
	var w io.Writer // stays a nil interface when out is nil
	if out != nil {
		w = logs.Lock(out) // the partitions print concurrently, as in the program
	}
	// One partition: goka's tester runs every topic in partition 0, the
	// home of every key.
	c := NewCounter(w, "", 1, nil, slog.New(slog.DiscardHandler))
	p, err := goka.NewProcessor(nil, c.Graph(), goka.WithTester(tt))
	if err != nil {
		t.Fatalf("NewProcessor: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor Run: %v", err)
		}
	})
	return tt
}

func TestProcessorCountsClicksPerKey(t *testing.T) {
	var out strings.Builder
	tt := startTestProcessor(t, &out)

	want := map[string]int{"user-0": 3, "user-1": 1, "user-7": 5}
	for key, n := range want {
		for i := range n {
			tt.Consume(string(Topic), key, fmt.Sprintf("click %d", i))
		}
	}
	for key, n := range want {
		got, ok := tt.TableValue(Table, key).(*User)
		if !ok {
			t.Fatalf("table value of %s is %T, want *User", key, tt.TableValue(Table, key))
		}
		if got.Clicks != n {
			t.Errorf("%s: got %d clicks, want %d", key, got.Clicks, n)
		}
	}
	if v := tt.TableValue(Table, "user-2"); v != nil {
		t.Errorf("user-2 never clicked, but the table has %v", v)
	}
	if !strings.Contains(out.String(), "[proc] key: user-7 clicks: 5, msg: click 4\n") {
		t.Errorf("output lacks the seed's line for user-7's fifth click:\n%s", out.String())
	}
	if n := strings.Count(out.String(), "[proc] "); n != 9 {
		t.Errorf("got %d [proc] lines, want 9", n)
	}
}

func TestProcessorPersistsSeedJSON(t *testing.T) {
	tt := startTestProcessor(t, nil)
	// A count left by the original example is continued, not restarted.
	old, err := UserCodec{}.Decode([]byte(`{"Clicks":152}`))
	if err != nil {
		t.Fatal(err)
	}
	tt.SetTableValue(Table, "user-3", old)
	tt.Consume(string(Topic), "user-3", "a click")

	got, ok := tt.TableValue(Table, "user-3").(*User)
	if !ok || got.Clicks != 153 {
		t.Fatalf("user-3 = %#v, want 153 clicks", tt.TableValue(Table, "user-3"))
	}
	if got.Offset != 0 {
		t.Errorf("persisted offset %d, want 0, the offset of the click counted", got.Offset)
	}
}

// A click delivered again (after a crash between the table write and the
// offset commit) is not counted again, but its value is written again.
func TestProcessorCountsRedeliveredClickOnce(t *testing.T) {
	tests := []struct {
		name       string
		stored     User
		topicID    string
		offset     int64
		wantClicks int
	}{
		{"next click", User{Clicks: 5, Offset: 40, TopicID: "t1"}, "t1", 41, 6},
		{"same click again", User{Clicks: 5, Offset: 40, TopicID: "t1"}, "t1", 40, 5},
		{"older click again", User{Clicks: 5, Offset: 40, TopicID: "t1"}, "t1", 12, 5},
		{"topic created again", User{Clicks: 5, Offset: 40, TopicID: "t1"}, "t2", 0, 6},
		{"broker without topic IDs", User{Clicks: 5, Offset: 40}, "", 40, 5},
		{"table of the original", User{Clicks: 5, Offset: -1}, "t1", 0, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored := tc.stored
			ctx := &fakeContext{value: &stored, offset: tc.offset}
			NewCounter(nil, tc.topicID, 1, nil, slog.New(slog.DiscardHandler)).click(ctx, "click")
			if ctx.failed != nil {
				t.Fatal(ctx.failed)
			}
			got, ok := ctx.set.(*User)
			if !ok {
				t.Fatalf("value not written again: SetValue(%v)", ctx.set)
			}
			if got.Clicks != tc.wantClicks {
				t.Errorf("clicks %d, want %d", got.Clicks, tc.wantClicks)
			}
			// Counted: this click's offset, of this incarnation. Not
			// counted: the value as it was.
			want := tc.stored
			if tc.wantClicks > tc.stored.Clicks {
				want.Clicks, want.Offset, want.TopicID = tc.wantClicks, tc.offset, tc.topicID
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("wrote %+v, want %+v", *got, want)
			}
		})
	}
}

// gokaContext lets fakeContext embed goka.Context, whose method Context
// would clash with a field named Context.
type gokaContext = goka.Context

// fakeContext is a goka.Context with just enough behaviour to drive the
// callback with a table value goka's tester cannot store.
type fakeContext struct {
	gokaContext        // nil: calling anything not defined below panics the test
	key         string // "" is user-1
	noKey       bool   // the record has no key
	partition   int32
	value       any
	offset      int64
	failed      error
	set         any
	looped      any // the value of a Loopback
	headers     goka.Headers
	run         context.Context // the partition processor's run; nil: context.Background()
	reads       int             // calls of Value
}

func (c *fakeContext) Context() context.Context {
	if c.run == nil {
		return context.Background()
	}
	return c.run
}

func (c *fakeContext) Headers() goka.Headers { return c.headers }

func (c *fakeContext) Partition() int32 { return c.partition }
func (c *fakeContext) Offset() int64    { return c.offset }
func (c *fakeContext) Key() string {
	if c.noKey {
		return ""
	}
	if c.key == "" {
		return "user-1"
	}
	return c.key
}
func (c *fakeContext) Value() any                              { c.reads++; return c.value }
func (c *fakeContext) SetValue(v any, _ ...goka.ContextOption) { c.set = v }
func (c *fakeContext) Fail(err error)                          { c.failed = err }
func (c *fakeContext) Loopback(key string, v any, _ ...goka.ContextOption) {
	if key != c.Key() {
		c.failed = fmt.Errorf("Loopback to key %q from %q", key, c.Key())
	}
	c.looped = v
}

func TestProcessorFailsOnForeignTableValue(t *testing.T) {
	ctx := &fakeContext{value: "not a user"}
	NewCounter(nil, "", 1, nil, slog.New(slog.DiscardHandler)).click(ctx, "click")
	if ctx.failed == nil {
		t.Fatal("callback accepted a table value that is not *User")
	}
	if !strings.Contains(ctx.failed.Error(), "string") {
		t.Errorf("error %q does not name the wrong type", ctx.failed)
	}
	if ctx.set != nil {
		t.Errorf("callback wrote %v after failing", ctx.set)
	}
}

func TestProcessorSkipsClicksWithoutKeyAndShortensLongValues(t *testing.T) {
	var out strings.Builder
	tt := startTestProcessor(t, &out)
	tt.Consume(string(Topic), "", "a click without a user")
	tt.Consume(string(Topic), "user-5", strings.Repeat("v", 1<<20))
	if v := tt.TableValue(Table, ""); v != nil {
		t.Errorf("a click without a key was counted: %v", v)
	}
	if u, ok := tt.TableValue(Table, "user-5").(*User); !ok || u.Clicks != 1 {
		t.Errorf("user-5 = %v, want 1 click", tt.TableValue(Table, "user-5"))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || len(lines[0]) > 200 {
		t.Errorf("want one short [proc] line, got %d lines, the first %d bytes long", len(lines), len(lines[0]))
	}
}

// A filler record (written by clicks into offsets a damaged log lost,
// without a key) is not a click: skipped as such, nothing stored, in
// user-clicks and in the loop topic (where it is no forward either).
func TestFillerIsNotAClick(t *testing.T) {
	for _, tc := range []struct {
		topic string
		call  func(*Counter, goka.Context)
	}{
		{"user-clicks", func(c *Counter, ctx goka.Context) { c.click(ctx, "") }},
		{"loop", func(c *Counter, ctx goka.Context) { c.forwarded(ctx, unreadable{errors.New("empty")}) }},
	} {
		ctx := &fakeContext{noKey: true, headers: goka.Headers{filler.Header: nil}}
		events := &recordedEvents{skipped: map[string]int{}}
		tc.call(NewCounter(nil, "", 1, events, slog.New(slog.DiscardHandler)), ctx)
		if ctx.set != nil || events.counted != 0 {
			t.Errorf("%s: a filler was counted: stored %v, counted %d", tc.topic, ctx.set, events.counted)
		}
		if len(events.skipped) != 1 || events.skipped[SkipFiller] != 1 {
			t.Errorf("%s: skipped %v, want one %s", tc.topic, events.skipped, SkipFiller)
		}
	}
}

// A click without a value (null, as another client may send it) is a
// click: its key is the user.
func TestNullValueIsAClick(t *testing.T) {
	ctx := &fakeContext{key: "user-1", offset: 7}
	events := &recordedEvents{skipped: map[string]int{}}
	NewCounter(nil, "t1", 1, events, slog.New(slog.DiscardHandler)).click(ctx, nil)
	if ctx.failed != nil {
		t.Fatal(ctx.failed)
	}
	if u, ok := ctx.set.(*User); !ok || u.Clicks != 1 || events.counted != 1 {
		t.Errorf("stored %v, counted %d; want one click", ctx.set, events.counted)
	}
}

// A click's value as the [proc] line shows it and a forward carries it:
// cut at 100 bytes, whatever its type.
func TestClickText(t *testing.T) {
	long := strings.Repeat("x", 150)
	tests := []struct {
		msg  any
		want string
	}{
		{"click 4", "click 4"},
		{long, long[:100] + "..."},
		{nil, "<nil>"},
		{42, "42"},
	}
	for _, tt := range tests {
		if got := clickText(tt.msg); got != tt.want {
			t.Errorf("clickText(%v) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}
