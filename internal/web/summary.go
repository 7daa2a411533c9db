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
// It starts with one scan of the view once the view has recovered, then
// follows every update through the view's update callback (see update).
type Summary struct {
	// gate orders updates against the scan: updates hold it shared, the
	// Scan exclusively, so every update is either in the scan's snapshot
	// or tracked after it, never both and never neither.
	gate     sync.RWMutex
	tracking atomic.Bool // updates are tracked: the first scan is done

	mu    sync.Mutex
	total int64
	users int64
	top   map[string]int64 // at most maxTop users; every other ranks below each of them
	low   string           // the lowest-ranked member of top, "" if unknown
	stale bool             // a top user lost clicks: only a new scan knows who follows
}

// NewSummary returns an empty summary, not tracking yet.
func NewSummary() *Summary {
	return &Summary{top: make(map[string]int64, maxTop)}
}

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

// Update is the view's update callback (goka.WithViewCallback): it stores
// the value as goka's default does and, once the summary tracks updates,
// applies the change of the user's count. It never fails on a value it
// cannot decode: such a user counts zero here, and the view reports it
// where the user is asked for.
func (s *Summary) Update(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if !s.tracking.Load() {
		return goka.DefaultUpdate(ctx, st, key, value)
	}
	old, err := st.Get(key)
	if err != nil {
		return fmt.Errorf("read previous value of %q: %w", key, err)
	}
	if err := goka.DefaultUpdate(ctx, st, key, value); err != nil {
		return err
	}
	s.apply(key, old, value)
	return nil
}

// apply records that key's stored value changed from old to value (nil:
// absent).
func (s *Summary) apply(key string, old, value []byte) {
	before, after := clicks.ClicksIn(old), clicks.ClicksIn(value)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total += after - before
	switch {
	case old == nil && value != nil:
		s.users++
	case old != nil && value == nil:
		s.users--
	}
	if value == nil {
		if _, ok := s.top[key]; ok {
			delete(s.top, key)
			s.lostTopUser()
		}
		return
	}
	s.rank(RankedUser{key, after})
}

// rank puts u into the top users if it belongs there. Counts only grow,
// so a user outside the top only has to beat the lowest member.
func (s *Summary) rank(u RankedUser) {
	if prev, ok := s.top[u.User]; ok {
		s.top[u.User] = u.Clicks
		if u.Clicks < prev {
			s.lostTopUser()
		} else if u.User == s.low {
			s.low = "" // it may have passed another member
		}
		return
	}
	if len(s.top) < maxTop {
		s.top[u.User] = u.Clicks
		s.low = ""
		return
	}
	low := s.lowest()
	if !ranksBelow(low, u) {
		return
	}
	delete(s.top, low.User)
	s.top[u.User] = u.Clicks
	s.low = ""
}

// lostTopUser notes that a member of a full top list lost clicks or was
// deleted: some user outside may now rank above it, and only a scan can
// tell which.
func (s *Summary) lostTopUser() {
	s.low = ""
	if s.users > int64(len(s.top)) {
		s.stale = true
	}
}

// lowest returns the lowest-ranked member of a non-empty top list.
func (s *Summary) lowest() RankedUser {
	if s.low != "" {
		return RankedUser{s.low, s.top[s.low]}
	}
	var low RankedUser
	first := true
	for k, n := range s.top {
		if u := (RankedUser{k, n}); first || ranksBelow(u, low) {
			low, first = u, false
		}
	}
	s.low = low.User
	return low
}

// Stored is the view's local table as stored, by partition: Scan reads
// the counts from the values without decoding whole users (see
// cache.Tables).
type Stored interface {
	Partitions() []int32
	ScanPartition(partition int32, fn func(key, value []byte)) error
}

// Scan counts the whole table and, from then on, tracks every update. It
// runs when the view has recovered, and again when the top list is stale.
// Updates wait while it runs: once, at start, a fraction of a second for
// a million users, the partitions counted at once.
func (s *Summary) Scan(t Stored) error {
	s.gate.Lock()
	defer s.gate.Unlock()
	parts := t.Partitions()
	counted := make([]*Summary, len(parts))
	var g errgroup.Group
	for i, p := range parts {
		part := NewSummary()
		counted[i] = part
		g.Go(func() error {
			err := t.ScanPartition(p, func(key, value []byte) {
				n := clicks.ClicksIn(value) // an unreadable value counts zero, as in update
				part.users++
				part.total += n
				part.offer(key, n)
			})
			if err != nil {
				return fmt.Errorf("scan the table: %w", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	fresh := NewSummary()
	for _, part := range counted {
		fresh.users += part.users
		fresh.total += part.total
		for k, n := range part.top {
			fresh.rank(RankedUser{k, n})
		}
	}
	s.mu.Lock()
	s.total, s.users, s.top, s.low, s.stale = fresh.total, fresh.users, fresh.top, fresh.low, false
	s.mu.Unlock()
	s.tracking.Store(true)
	return nil
}

// offer ranks a user met in a scan, which visits each user once: the key
// becomes a string only if the user enters the top list.
func (s *Summary) offer(key []byte, n int64) {
	if len(s.top) == maxTop {
		low := s.lowest()
		if n < low.Clicks || (n == low.Clicks && string(key) > low.User) {
			return
		}
	}
	s.rank(RankedUser{string(key), n})
}

// Snapshot is the summary at one moment.
type Snapshot struct {
	Tracking bool // false until the first scan is done: the numbers are not known yet
	Stale    bool // the top list needs a new scan
	Total    int64
	Users    int64
	Top      []RankedUser // best first
}

// Snapshot returns the current numbers and the top users, best first.
func (s *Summary) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	top := make([]RankedUser, 0, len(s.top))
	for k, n := range s.top {
		top = append(top, RankedUser{k, n})
	}
	slices.SortFunc(top, func(a, b RankedUser) int {
		if c := cmp.Compare(b.Clicks, a.Clicks); c != 0 {
			return c
		}
		return cmp.Compare(a.User, b.User)
	})
	return Snapshot{Tracking: s.tracking.Load(), Stale: s.stale, Total: s.total, Users: s.users, Top: top}
}
