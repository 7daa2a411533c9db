package web

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"clicks/internal/clicks"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"golang.org/x/sync/errgroup"
)

// maxTop is how many users the summary ranks: the page shows at most
// this many, however many users the table holds.
const maxTop = 100

// Summary keeps what the live page shows of the whole table (the sum
// of all counts, the number of users and the top users by clicks) without
// reading the whole table on every change: with 100,000 users a scan a
// second would cost more than the counting itself.
//
// It keeps a tally per partition: a count of the partition's local cache
// once the partition has recovered (CountPartition), which then follows
// every update through the view's update callback (see Update). The
// partitions of a fresh view recover at different times, and each is
// counted as it does while others still recover: one count of the whole
// table once all had recovered was a tenth of the time until a fresh view
// of a million users was served.
type Summary struct {
	parts   sync.Map    // partition (int32) -> *tally, made on first use
	counted atomic.Bool // every partition is counted: the numbers are known
}

// tally is the summary of one partition.
type tally struct {
	mu      sync.Mutex
	counted bool // the cache is counted, and every update since
	total   int64
	users   int64
	top     map[string]int64 // at most maxTop users; every other ranks below each of them
	low     string           // the lowest-ranked member of top, "" if unknown
	stale   bool             // a top user lost clicks: only a new count knows who follows
}

// NewSummary returns an empty summary, not counted yet.
func NewSummary() *Summary { return &Summary{} }

func newTally() *tally { return &tally{top: make(map[string]int64, maxTop)} }

// RankedUser is a user and the user's count.
type RankedUser struct {
	User   string `json:"user"`
	Clicks int64  `json:"clicks"`
}

// ranksBelow orders users by clicks, most first, then by key, so that the
// order is total and stable: users with equal counts do not swap places.
func ranksBelow(a, b RankedUser) bool {
	return a.Clicks < b.Clicks || (a.Clicks == b.Clicks && a.User > b.User)
}

// partition returns the tally of partition p, made on first use.
func (s *Summary) partition(p int32) *tally {
	if t, ok := s.parts.Load(p); ok {
		return t.(*tally)
	}
	t, _ := s.parts.LoadOrStore(p, newTally())
	return t.(*tally)
}

// Update is the view's update callback (goka.WithViewCallback): it stores
// the value as goka's default does and, once the partition is counted,
// applies the change of the user's count to its tally. It never fails on
// a value it cannot decode: such a user counts zero here, and the view
// reports it where the user is asked for.
func (s *Summary) Update(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	p := s.partition(ctx.Partition())
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.counted {
		return goka.DefaultUpdate(ctx, st, key, value)
	}
	old, err := st.Get(key)
	if err != nil {
		return fmt.Errorf("read previous value of %q: %w", key, err)
	}
	if err := goka.DefaultUpdate(ctx, st, key, value); err != nil {
		return err
	}
	p.apply(key, old, value)
	return nil
}

// Stored is the view's local table as stored, by partition: Scan reads
// the counts from the values without decoding whole users (see
// cache.Tables).
type Stored interface {
	Partitions() []int32
	ScanPartition(partition int32, fn func(key, value []byte)) error
}

// CountPartition counts partition n of t, once its cache has recovered,
// unless it is counted already; updates of the partition wait meanwhile.
func (s *Summary) CountPartition(t Stored, n int32) error {
	return s.countPartition(t, n, false)
}

// Scan counts each partition of t not counted yet, and each whose top
// list is stale, at once; from then on the numbers are known. It runs
// when the view has recovered, and again when a top list is stale.
func (s *Summary) Scan(t Stored) error {
	var g errgroup.Group
	for _, n := range t.Partitions() {
		g.Go(func() error { return s.countPartition(t, n, true) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	s.counted.Store(true)
	return nil
}

// countPartition counts partition n of t unless it is counted already
// (and, if stale is set, its top list is not stale).
func (s *Summary) countPartition(t Stored, n int32, stale bool) error {
	p := s.partition(n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.counted && !(stale && p.stale) {
		return nil
	}
	if err := p.count(func(fn func(key, value []byte)) error { return t.ScanPartition(n, fn) }); err != nil {
		return fmt.Errorf("count partition %d of the table: %w", n, err)
	}
	return nil
}

// count replaces the tally with a count of what scan reads, each user
// once, and follows updates from then on. p.mu is held.
func (p *tally) count(scan func(fn func(key, value []byte)) error) error {
	fresh := newTally()
	err := scan(func(key, value []byte) {
		n := clicks.ClicksIn(value) // an unreadable value counts zero, as in apply
		fresh.users++
		fresh.total += n
		fresh.offer(key, n)
	})
	if err != nil {
		return err
	}
	p.total, p.users, p.top, p.low, p.stale, p.counted = fresh.total, fresh.users, fresh.top, fresh.low, false, true
	return nil
}

// apply records that key's stored value changed from old to value (nil:
// absent). p.mu is held.
func (p *tally) apply(key string, old, value []byte) {
	before, after := clicks.ClicksIn(old), clicks.ClicksIn(value)
	p.total += after - before
	switch {
	case old == nil && value != nil:
		p.users++
	case old != nil && value == nil:
		p.users--
	}
	if value == nil {
		if _, ok := p.top[key]; ok {
			delete(p.top, key)
			p.lostTopUser()
		}
		return
	}
	p.rank(RankedUser{key, after})
}

// rank puts u into the top users if it belongs there. Counts only grow,
// so a user outside the top only has to beat the lowest member.
func (p *tally) rank(u RankedUser) {
	if prev, ok := p.top[u.User]; ok {
		p.top[u.User] = u.Clicks
		if u.Clicks < prev {
			p.lostTopUser()
		} else if u.User == p.low {
			p.low = "" // it may have passed another member
		}
		return
	}
	if len(p.top) < maxTop {
		p.top[u.User] = u.Clicks
		p.low = ""
		return
	}
	low := p.lowest()
	if !ranksBelow(low, u) {
		return
	}
	delete(p.top, low.User)
	p.top[u.User] = u.Clicks
	p.low = ""
}

// lostTopUser notes that a member of a full top list lost clicks or was
// deleted: some user outside may now rank above it, and only a count can
// tell which.
func (p *tally) lostTopUser() {
	p.low = ""
	if p.users > int64(len(p.top)) {
		p.stale = true
	}
}

// lowest returns the lowest-ranked member of a non-empty top list.
func (p *tally) lowest() RankedUser {
	if p.low != "" {
		return RankedUser{p.low, p.top[p.low]}
	}
	var low RankedUser
	first := true
	for k, n := range p.top {
		if u := (RankedUser{k, n}); first || ranksBelow(u, low) {
			low, first = u, false
		}
	}
	p.low = low.User
	return low
}

// offer ranks a user met in a count, which visits each user once: the key
// becomes a string only if the user enters the top list.
func (p *tally) offer(key []byte, n int64) {
	if len(p.top) == maxTop {
		low := p.lowest()
		if n < low.Clicks || (n == low.Clicks && string(key) > low.User) {
			return
		}
	}
	p.rank(RankedUser{string(key), n})
}

// Snapshot is the summary at one moment.
type Snapshot struct {
	Tracking bool // false until every partition is counted: the numbers are not known yet
	Stale    bool // a top list needs a new count
	Total    int64
	Users    int64
	Top      []RankedUser // best first, at most maxTop
}

// Snapshot returns the current numbers and the top users, best first:
// the best of the partitions' top lists, each of which holds every user
// of its partition who ranks among the whole table's best.
func (s *Summary) Snapshot() Snapshot {
	snap := Snapshot{Tracking: s.counted.Load()}
	var top []RankedUser
	s.parts.Range(func(_, t any) bool {
		p := t.(*tally)
		p.mu.Lock()
		defer p.mu.Unlock()
		snap.Total += p.total
		snap.Users += p.users
		snap.Stale = snap.Stale || p.stale
		for k, n := range p.top {
			top = append(top, RankedUser{k, n})
		}
		return true
	})
	slices.SortFunc(top, func(a, b RankedUser) int {
		if c := cmp.Compare(b.Clicks, a.Clicks); c != 0 {
			return c
		}
		return cmp.Compare(a.User, b.User)
	})
	snap.Top = top[:min(len(top), maxTop):min(len(top), maxTop)]
	if snap.Top == nil {
		snap.Top = []RankedUser{}
	}
	return snap
}
