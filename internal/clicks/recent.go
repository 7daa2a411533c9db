package clicks

import (
	"sync/atomic"

	"github.com/lovoo/goka"
)

// recentUsersLimit is how many decoded users recentUsers holds in all;
// a partition's share, at least minRecentPerPartition, is forgotten at
// once when it is full. 16,384 users are about 2 MiB.
const (
	recentUsersLimit      = 16384
	minRecentPerPartition = 64
)

// recentUsers keeps, per partition, the users the click callbacks last
// wrote, as they wrote them, so that the next click of a busy user does
// not decode the value the last one encoded. Counting 10 users at full
// speed, reading the stored user back (goka's ctx.Value: the local table,
// then the codec) was a sixteenth of the program's CPU.
//
// Holding a user instead of reading it gives what ctx.Value would give
// only because the processor owns its table: while a partition processor
// runs, its callbacks are its table partition's only writers (goka
// recovers the table before it calls them), one callback at a time, and
// what they write reads back as written (FuzzUserCodec). goka starts a
// new partition processor at every rebalance and restart, with a context
// of its own, so the users kept belong to the run whose context's Done
// channel they were kept under: the first click of another run starts
// empty and reads the table, with whatever another instance wrote to it
// meanwhile.
type recentUsers struct {
	perPartition int
	parts        []atomic.Pointer[runUsers] // by partition
}

// runUsers are the users one run of a partition processor wrote.
type runUsers struct {
	run   <-chan struct{} // the run's ctx.Context().Done()
	users map[string]*User
}

func newRecentUsers(partitions int32) *recentUsers {
	if partitions < 1 {
		partitions = 1
	}
	return &recentUsers{
		perPartition: max(minRecentPerPartition, recentUsersLimit/int(partitions)),
		parts:        make([]atomic.Pointer[runUsers], partitions),
	}
}

// of returns the users kept for ctx's partition in ctx's run, nil where
// there is no partition to keep them for.
func (r *recentUsers) of(ctx goka.Context) *runUsers {
	p := ctx.Partition()
	if p < 0 || int(p) >= len(r.parts) {
		return nil
	}
	run := ctx.Context().Done()
	s := r.parts[p].Load()
	if s == nil || s.run != run {
		s = &runUsers{run: run, users: make(map[string]*User)}
		r.parts[p].Store(s)
	}
	return s
}

// get returns the user last written for key in this run, if it is kept.
func (s *runUsers) get(key string) (*User, bool) {
	if s == nil {
		return nil, false
	}
	u, ok := s.users[key]
	return u, ok
}

// put keeps u, just written for key with ctx.SetValue; limit is the
// partition's share. The caller changes u only to write it again.
func (s *runUsers) put(key string, u *User, limit int) {
	if s == nil {
		return
	}
	if _, ok := s.users[key]; !ok && len(s.users) >= limit {
		// Full: with more busy users than fit, keeping them is worth
		// little, and clear keeps the map's memory for the next ones.
		clear(s.users)
	}
	s.users[key] = u
}
