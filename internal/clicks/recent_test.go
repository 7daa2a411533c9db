package clicks

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
)

// Within one run of a partition processor a user's next click counts on
// the user its last click wrote, without reading the table again.
func TestRecentUsersCountWithoutReading(t *testing.T) {
	c := NewCounter(nil, "t1", 1, nil, slog.New(slog.DiscardHandler))
	run, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx := &fakeContext{run: run, value: &User{Clicks: 5, Offset: 40, TopicID: "t1"}}
	for offset := int64(41); offset <= 45; offset++ {
		ctx.offset = offset
		c.click(ctx, "click")
		if ctx.failed != nil {
			t.Fatal(ctx.failed)
		}
	}
	if ctx.reads != 1 {
		t.Errorf("the table was read %d times in one run, want once", ctx.reads)
	}
	got, ok := ctx.set.(*User)
	if !ok || got.Clicks != 10 || got.Offset != 45 {
		t.Fatalf("wrote %+v, want 10 clicks up to offset 45", ctx.set)
	}
	// A click delivered again in the same run is still recognised.
	ctx.offset = 43
	c.click(ctx, "click")
	if got := ctx.set.(*User); got.Clicks != 10 {
		t.Errorf("a click delivered again was counted: %d clicks, want 10", got.Clicks)
	}
}

// A new run (a rebalance, a restart) reads the table: another instance
// may have counted the user meanwhile, and its value came from the
// changelog, not from this instance's callbacks.
func TestRecentUsersForgottenInANewRun(t *testing.T) {
	c := NewCounter(nil, "t1", 2, nil, slog.New(slog.DiscardHandler))
	first, cancelFirst := context.WithCancel(context.Background())
	ctx := &fakeContext{key: "user-1", partition: KeyPartition("user-1", 2), run: first, value: &User{Clicks: 5, Offset: 40, TopicID: "t1"}}
	ctx.offset = 41
	c.click(ctx, "click")
	cancelFirst()

	// Another instance counted 20 more meanwhile.
	second, cancelSecond := context.WithCancel(context.Background())
	defer cancelSecond()
	ctx.run, ctx.value, ctx.offset = second, &User{Clicks: 26, Offset: 61, TopicID: "t1"}, 62
	c.click(ctx, "click")
	if ctx.failed != nil {
		t.Fatal(ctx.failed)
	}
	got, ok := ctx.set.(*User)
	if !ok || got.Clicks != 27 || got.Offset != 62 {
		t.Fatalf("wrote %+v in the new run, want 27 clicks up to offset 62 (counted on the table's value)", ctx.set)
	}
	if ctx.reads != 2 {
		t.Errorf("the table was read %d times in two runs, want twice", ctx.reads)
	}
}

// The users kept are bounded: with more users than fit, a partition's
// share is forgotten and read again.
func TestRecentUsersBounded(t *testing.T) {
	r := newRecentUsers(1000)
	if r.perPartition != minRecentPerPartition {
		t.Errorf("1000 partitions keep %d users each, want %d", r.perPartition, minRecentPerPartition)
	}
	r = newRecentUsers(1)
	s := r.of(&fakeContext{})
	for i := range 3 * r.perPartition {
		s.put(fmt.Sprintf("user-%d", i), &User{}, r.perPartition)
		if len(s.users) > r.perPartition {
			t.Fatalf("%d users kept, the limit is %d", len(s.users), r.perPartition)
		}
	}
	if _, ok := s.get(fmt.Sprintf("user-%d", 3*r.perPartition-1)); !ok {
		t.Error("the user written last is not kept")
	}
	if r.of(&fakeContext{partition: 7}) != nil {
		t.Error("a partition the counter does not know of got users kept")
	}
}
