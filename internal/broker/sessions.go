package broker

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The embedded broker (kfake) does not expire every dead group member. A
// member that dies while it waits for its JoinGroup answer had its session
// timer stopped for the wait, and kfake re-arms it only when the answer
// reaches the client, which it no longer does. Such a member stays in the
// group, and kfake may even keep it and drop the live one when the sync
// times out: its partitions are then never consumed and their clicks never
// counted. A processor killed during a rebalance leaves one behind.
//
// sessionWatch stands in for the missing expiry. It sees every connection
// the broker accepts and every request that proves a member alive, and it
// removes (with LeaveGroup, as an admin tool would) a member whose
// connection is closed and that has not been heard from for its session
// timeout. A member waiting in JoinGroup keeps its connection open, so it
// is never taken for dead.
type sessionWatch struct {
	mu      sync.Mutex
	members map[string]memberSeen // by member ID
	conns   map[string]int        // open connections by remote address
}

type memberSeen struct {
	last    time.Time
	session time.Duration
}

// defaultSessionTimeout applies to a member that never sent a request with
// its member ID: one that died before its first heartbeat. It is sarama's
// default session timeout. (A live member heartbeats with its ID every few
// seconds, so it is never judged by this default.)
const defaultSessionTimeout = 10 * time.Second

func newSessionWatch() *sessionWatch {
	return &sessionWatch{members: map[string]memberSeen{}, conns: map[string]int{}}
}

// observe notes a request from a group member. It runs on kfake's request
// loop, so it only records.
func (w *sessionWatch) observe(req kmsg.Request, now time.Time) {
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		w.seen(r.MemberID, now, time.Duration(r.SessionTimeoutMillis)*time.Millisecond)
	case *kmsg.HeartbeatRequest:
		w.seen(r.MemberID, now, 0)
	case *kmsg.SyncGroupRequest:
		w.seen(r.MemberID, now, 0)
	case *kmsg.OffsetCommitRequest:
		w.seen(r.MemberID, now, 0)
	}
}

func (w *sessionWatch) seen(id string, now time.Time, session time.Duration) {
	if id == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.members[id]
	m.last = now
	if session > 0 {
		m.session = session
	}
	if m.session == 0 {
		m.session = defaultSessionTimeout
	}
	w.members[id] = m
}

// groupMember is a member as DescribeGroups lists it.
type groupMember struct {
	group, id, host string
}

// expired returns the members among current whose connection is closed
// and who have been silent for longer than their session timeout. It
// forgets members that are gone and starts the clock for new ones.
func (w *sessionWatch) expired(current []groupMember, now time.Time) []groupMember {
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := make(map[string]memberSeen, len(current))
	var dead []groupMember
	for _, gm := range current {
		m, ok := w.members[gm.id]
		if !ok {
			m = memberSeen{last: now, session: defaultSessionTimeout}
		}
		if w.conns[gm.host] == 0 && now.Sub(m.last) > m.session {
			dead = append(dead, gm)
			continue
		}
		keep[gm.id] = m
	}
	w.members = keep
	return dead
}

// listen wraps a broker's listener so that the watch knows which client
// connections are open.
func (w *sessionWatch) listen(ln net.Listener) net.Listener {
	return &watchedListener{Listener: ln, w: w}
}

type watchedListener struct {
	net.Listener
	w *sessionWatch
}

func (l *watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	addr := c.RemoteAddr().String()
	l.w.mu.Lock()
	l.w.conns[addr]++
	l.w.mu.Unlock()
	return &watchedConn{Conn: c, w: l.w, addr: addr}, nil
}

type watchedConn struct {
	net.Conn
	w    *sessionWatch
	addr string
	once sync.Once
}

func (c *watchedConn) Close() error {
	c.once.Do(func() {
		c.w.mu.Lock()
		defer c.w.mu.Unlock()
		if c.w.conns[c.addr]--; c.w.conns[c.addr] <= 0 {
			delete(c.w.conns, c.addr)
		}
	})
	return c.Conn.Close()
}

// WatchSessions observes the group requests of the embedded broker and,
// every interval until ctx ends, removes the members that have expired.
func (b *Embedded) WatchSessions(ctx context.Context, interval time.Duration) error {
	for _, key := range []kmsg.Key{kmsg.JoinGroup, kmsg.Heartbeat, kmsg.SyncGroup, kmsg.OffsetCommit} {
		control(b.Cluster, key, controlRenewal, func(req kmsg.Request) (kmsg.Response, error, bool) {
			b.sessions.observe(req, time.Now())
			return nil, nil, false // only watching: kfake handles the request
		})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.ListenAddrs()...))
	if err != nil {
		return fmt.Errorf("session watch client: %w", err)
	}
	defer cl.Close()

	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := b.removeExpiredMembers(ctx, cl); err != nil && ctx.Err() == nil {
			b.logger.Warn("session watch", "err", err)
		}
	}
}

// removeExpiredMembers removes the expired members of every classic group.
func (b *Embedded) removeExpiredMembers(ctx context.Context, cl *kgo.Client) error {
	list, err := kmsg.NewPtrListGroupsRequest().RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	if len(list.Groups) == 0 {
		return nil
	}
	describe := kmsg.NewPtrDescribeGroupsRequest()
	for _, g := range list.Groups {
		describe.Groups = append(describe.Groups, g.Group)
	}
	described, err := describe.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("describe groups: %w", err)
	}
	var current []groupMember
	for _, g := range described.Groups {
		for _, m := range g.Members {
			current = append(current, groupMember{group: g.Group, id: m.MemberID, host: m.ClientHost})
		}
	}
	for _, m := range b.sessions.expired(current, time.Now()) {
		leave := kmsg.NewPtrLeaveGroupRequest()
		leave.Group = m.group
		member := kmsg.NewLeaveGroupRequestMember()
		member.MemberID = m.id
		reason := "clicks: session expired, its connection is closed"
		member.Reason = &reason
		leave.Members = append(leave.Members, member)
		if _, err := leave.RequestWith(ctx, cl); err != nil {
			return fmt.Errorf("remove member %s of group %s: %w", m.id, m.group, err)
		}
		b.logger.Warn("removed a dead group member that the embedded broker had kept", "group", m.group, "member", m.id)
	}
	return nil
}
