package kafka

import (
	"slices"
	"strings"
	"testing"
)

func TestPlanTopics(t *testing.T) {
	topics := Topics{Stream: "user-clicks", Table: "mini-group-table", Loop: "mini-group-loop"}
	all := []string{"user-clicks", "mini-group-table", "mini-group-loop"}
	tests := []struct {
		name       string
		existing   map[string]int32
		asked      int32
		explicit   bool
		partitions int32
		create     []string
		err        []string // what the error must say
	}{
		{"a new cluster", nil, 10, false, 10, all, nil},
		{"a new cluster, -partitions 3", nil, 3, true, 3, all, nil},
		{"all there", map[string]int32{"user-clicks": 10, "mini-group-table": 10, "mini-group-loop": 10}, 10, false, 10, nil, nil},
		// goka's 2-clicks created the table (and its own user-click):
		// the topics clicks creates follow the table.
		{"the original's table", map[string]int32{"mini-group-table": 8, "user-click": 8}, 10, false, 8, []string{"user-clicks", "mini-group-loop"}, nil},
		{"the original's topics, -topic user-click", map[string]int32{"mini-group-table": 8, "user-click": 8}, 10, false, 8, []string{"mini-group-loop"}, nil},
		{"only the stream", map[string]int32{"user-clicks": 6}, 10, false, 6, []string{"mini-group-table", "mini-group-loop"}, nil},
		{"-partitions as the existing", map[string]int32{"mini-group-table": 8}, 8, true, 8, []string{"user-clicks", "mini-group-loop"}, nil},
		{"-partitions against the existing", map[string]int32{"mini-group-table": 8}, 10, true, 0, nil,
			[]string{"-partitions 10", "mini-group-table already has 8", "pass -partitions 8"}},
		{"existing topics disagree", map[string]int32{"user-clicks": 10, "mini-group-table": 8}, 10, false, 0, nil,
			[]string{"user-clicks has 10", "mini-group-table has 8", "--delete"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := topics
			if strings.Contains(tc.name, "-topic user-click") {
				tp.Stream = "user-click"
			}
			plan, err := PlanTopics(tp, tc.existing, tc.asked, tc.explicit)
			if tc.err != nil {
				if err == nil {
					t.Fatalf("plan %+v, want an error", plan)
				}
				for _, want := range tc.err {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.Partitions != tc.partitions || !slices.Equal(plan.Create, tc.create) {
				t.Errorf("plan %+v, want %d partitions and to create %v", plan, tc.partitions, tc.create)
			}
		})
	}
}
