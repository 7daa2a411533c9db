package broker

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfake stops a member's session timer while the member waits for its
// JoinGroup answer and never expires it if it dies then (docs/upstream.md):
// the watch expires exactly the members that are silent for their session
// timeout and have no open connection.
func TestKfakeJoinGroupSessionExpiry(t *testing.T) {
	w := newSessionWatch()
	t0 := time.Now()
	join := kmsg.NewPtrJoinGroupRequest()
	join.MemberID, join.SessionTimeoutMillis = "alive", 10_000
	w.observe(join, t0)
	join2 := kmsg.NewPtrJoinGroupRequest()
	join2.MemberID, join2.SessionTimeoutMillis = "dead", 10_000
	w.observe(join2, t0)
	w.conns["127.0.0.1:1000"] = 1 // alive's connection is open

	members := []groupMember{
		{group: "g", id: "alive", host: "127.0.0.1:1000"},
		{group: "g", id: "dead", host: "127.0.0.1:2000"},
		{group: "g", id: "never-seen", host: "127.0.0.1:3000"},
	}
	if got := w.expired(members, t0.Add(5*time.Second)); len(got) != 0 {
		t.Fatalf("expired within the session timeout: %v", got)
	}
	// A heartbeat keeps a member whose connection closed alive.
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.MemberID = "alive"
	delete(w.conns, "127.0.0.1:1000")
	w.observe(hb, t0.Add(9*time.Second))

	// dead has been silent 14s; never-seen, first listed at t0+5s, 9s.
	got := w.expired(members, t0.Add(14*time.Second))
	if len(got) != 1 || got[0].id != "dead" {
		t.Fatalf("expired %v at 14s, want only dead", got)
	}
	got = w.expired(members, t0.Add(16*time.Second))
	if len(got) != 1 || got[0].id != "never-seen" {
		t.Fatalf("expired %v at 16s, want never-seen", got)
	}
}
