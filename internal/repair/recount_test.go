package repair

import (
	"testing"

	"clicks/internal/clicks"
	"clicks/internal/filler"

	"github.com/IBM/sarama"
)

// Which records below the group's commit the repair takes for clicks the
// table must hold: a key of the partition's own users, not a filler, not
// a user whose value cannot be read (its clicks are skipped), not a user
// of goka's 2-clicks (its count holds every click below the commit).
func TestClickOf(t *testing.T) {
	const parts = 10
	p := clicks.KeyPartition("user-0", parts)
	other := "user-1"
	for i := 2; clicks.KeyPartition(other, parts) == p; i++ {
		other = "user-" + string(rune('0'+i))
	}
	counted := tableOffsets{unreadable: map[string]bool{"bad": true}, legacy: map[string]bool{"old": true}}
	fill := []*sarama.RecordHeader{{Key: []byte(filler.Header)}}
	tests := []struct {
		name string
		m    *sarama.ConsumerMessage
		want bool
	}{
		{"a click of the partition's user", &sarama.ConsumerMessage{Key: []byte("user-0")}, true},
		{"a click of another partition's user (forwarded)", &sarama.ConsumerMessage{Key: []byte(other)}, false},
		{"no key", &sarama.ConsumerMessage{}, false},
		{"a filler", &sarama.ConsumerMessage{Headers: fill}, false},
		{"a filler with a key", &sarama.ConsumerMessage{Key: []byte("user-0"), Headers: fill}, false},
	}
	for _, key := range []string{"bad", "old"} {
		kp := clicks.KeyPartition(key, parts)
		if got := clickOf(&sarama.ConsumerMessage{Key: []byte(key)}, kp, parts, counted); got {
			t.Errorf("%s: taken for a click the table must hold", key)
		}
		if got := clickOf(&sarama.ConsumerMessage{Key: []byte(key)}, kp, parts, tableOffsets{}); !got {
			t.Errorf("%s without its mark: not taken for a click", key)
		}
	}
	for _, tt := range tests {
		if got := clickOf(tt.m, p, parts, counted); got != tt.want {
			t.Errorf("%s: clickOf = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// Asked to read a partition again from several offsets, the group goes
// back to the lowest.
func TestRewindsLowestWins(t *testing.T) {
	rw := newRewinds()
	rw.add("user-clicks", 3, 50)
	rw.add("user-clicks", 3, 20)
	rw.add("user-clicks", 3, 70)
	rw.add("mini-group-loop", 3, 5)
	if got := rw.back["user-clicks"][3]; got != 20 {
		t.Errorf("user-clicks/3 read again from %d, want 20", got)
	}
	if got := rw.back["mini-group-loop"][3]; got != 5 {
		t.Errorf("mini-group-loop/3 read again from %d, want 5", got)
	}
}
