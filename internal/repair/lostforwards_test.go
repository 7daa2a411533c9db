package repair

import (
	"maps"
	"testing"

	"clicks/internal/clicks"
)

// Which loop partitions the repair looks at from the last forward
// counted, not only among the recent clicks: those whose end was really
// lost (not only what retention had deleted), those with a hole, those
// read again.
func TestLoopDamage(t *testing.T) {
	loop, topic := string(clicks.Loop), "user-clicks"
	tests := []struct {
		name           string
		lost           []lostEnd
		holes          []Gap
		readAgain      map[int32]int64
		damaged, holed []int32
	}{
		{name: "nothing known"},
		{name: "a lost end of the loop topic",
			lost:    []lostEnd{{Gap: Gap{Topic: loop, Partition: 2, From: 5, To: 9}}},
			damaged: []int32{2}},
		{name: "a lost end of user-clicks is not the loop's",
			lost: []lostEnd{{Gap: Gap{Topic: topic, Partition: 2, From: 5, To: 9}}}},
		{name: "only what retention had deleted",
			lost: []lostEnd{{Gap: Gap{Topic: loop, Partition: 2, From: 0, To: 9}, heldStart: 9}}},
		{name: "retention deleted part, the rest lost",
			lost:    []lostEnd{{Gap: Gap{Topic: loop, Partition: 2, From: 0, To: 9}, heldStart: 4}},
			damaged: []int32{2}},
		{name: "a hole",
			holes:   []Gap{{Topic: loop, Partition: 1, From: 3, To: 4}},
			damaged: []int32{1}, holed: []int32{1}},
		{name: "read again",
			readAgain: map[int32]int64{0: 7, 3: 0},
			damaged:   []int32{0, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			damaged, holed := loopDamage(tt.lost, tt.holes, tt.readAgain)
			if want := setOf(tt.damaged); !maps.Equal(damaged, want) {
				t.Errorf("damaged %v, want %v", damaged, want)
			}
			if want := setOf(tt.holed); !maps.Equal(holed, want) {
				t.Errorf("holed %v, want %v", holed, want)
			}
		})
	}
}

func setOf(ps []int32) map[int32]bool {
	m := map[int32]bool{}
	for _, p := range ps {
		m[p] = true
	}
	return m
}

// The last forward known of each other partition: counted or waiting,
// the later; waiting forwards do not count in a holed partition; -1
// where none is known; never the loop partition's own.
func TestLastForwarded(t *testing.T) {
	tests := []struct {
		name             string
		counted, waiting map[int32]int64
		holed            bool
		want             map[int32]int64
	}{
		{name: "none known", want: map[int32]int64{0: -1, 2: -1}},
		{name: "counted", counted: map[int32]int64{0: 7}, want: map[int32]int64{0: 7, 2: -1}},
		{name: "waiting after counted",
			counted: map[int32]int64{0: 7}, waiting: map[int32]int64{0: 9, 2: 4},
			want: map[int32]int64{0: 9, 2: 4}},
		{name: "counted after waiting",
			counted: map[int32]int64{0: 12}, waiting: map[int32]int64{0: 9},
			want: map[int32]int64{0: 12, 2: -1}},
		{name: "holed: waiting does not count",
			counted: map[int32]int64{0: 7}, waiting: map[int32]int64{0: 9, 2: 4}, holed: true,
			want: map[int32]int64{0: 7, 2: -1}},
		{name: "its own partition is left out",
			counted: map[int32]int64{1: 7}, waiting: map[int32]int64{1: 9},
			want: map[int32]int64{0: -1, 2: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lastForwarded(3, 1, tt.counted, tt.waiting, tt.holed); !maps.Equal(got, tt.want) {
				t.Errorf("lastForwarded = %v, want %v", got, tt.want)
			}
		})
	}
}

// A damaged loop partition is looked at from its last forward; a healthy
// one only among the last recentForwards clicks below the commit.
func TestLookAfter(t *testing.T) {
	c := int64(recentForwards + 1000)
	tests := []struct {
		name    string
		last, c int64
		damaged bool
		want    int64
	}{
		{"healthy, nothing known: the recent clicks", -1, c, false, 999},
		{"healthy, last forward among the recent", c - 10, c, false, c - 10},
		{"healthy, short log", -1, 100, false, -1},
		{"damaged, nothing known: from the start", -1, c, true, -1},
		{"damaged: from the last forward", 17, c, true, 17},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lookAfter(tt.last, tt.c, tt.damaged); got != tt.want {
				t.Errorf("lookAfter(%d, %d, %v) = %d, want %d", tt.last, tt.c, tt.damaged, got, tt.want)
			}
		})
	}
}
