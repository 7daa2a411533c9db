package repair

import "testing"

// What the repair takes for a lost end, from offsets alone: what was
// read, counted or held above where the log now ends, and how much of it
// was really lost rather than deleted by retention before.
func TestLostEndOf(t *testing.T) {
	for _, tc := range []struct {
		name                                       string
		end, committed, countedTo, held, heldStart int64
		lost                                       bool
		to, lostFrom                               int64
	}{
		{"nothing known above the end", 100, 100, 90, 100, 0, false, 100, 100},
		{"a new partition", 0, 0, 0, 0, 0, false, 0, 0},
		{"the group read past the end", 40, 100, 0, 0, 0, true, 100, 40},
		{"the table counted past the group's commit", 40, 35, 60, 0, 0, true, 60, 40},
		{"the broker held more than anybody read", 40, 45, 50, 80, 0, true, 80, 40},
		// kfake reloads a partition retention emptied with its end at 0:
		// nothing lost, but it is filled up to where it ended.
		{"emptied by retention, reloaded at 0", 0, 0, 0, 500, 500, true, 500, 500},
		{"part deleted by retention, the rest lost", 100, 300, 0, 300, 200, true, 300, 200},
	} {
		l, lost := lostEndOf("user-clicks", 3, tc.end, tc.committed, tc.countedTo, tc.held, tc.heldStart)
		if lost != tc.lost || l.To != tc.to || l.lostFrom() != tc.lostFrom {
			t.Errorf("%s: lost %v, to %d, lost from %d; want %v, %d, %d", tc.name, lost, l.To, l.lostFrom(), tc.lost, tc.to, tc.lostFrom)
		}
		if l.Topic != "user-clicks" || l.Partition != 3 || l.From != tc.end {
			t.Errorf("%s: %+v does not name the partition and its end", tc.name, l.Gap)
		}
	}
}
