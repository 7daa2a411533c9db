package clicks

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/lovoo/goka"
)

// NewView builds the view on the group table: a local, always complete
// copy of all partitions; opts say how it reaches Kafka, where it keeps
// its copy and what sees every update.
func NewView(brokers []string, opts ...goka.ViewOption) (*View, error) {
	build := func() (*goka.View, error) {
		v, err := goka.NewView(brokers, goka.GroupTable(Group), new(UserCodec), opts...)
		if err != nil {
			return nil, fmt.Errorf("create view of %s: %w", Table, err)
		}
		return v, nil
	}
	v, err := build()
	if err != nil {
		return nil, err
	}
	return &View{v: v, build: build}, nil
}

// Goka returns goka's view itself, unguarded, for goka's own monitor
// page.
func (s *View) Goka() *goka.View {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.v
}

// Rebuild replaces a view that has stopped with a new one on the same
// local table, to be run again: goka's view cannot run twice. Reads
// answer ErrViewStopped until then.
func (s *View) Rebuild() error {
	v, err := s.build()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v, s.closed = v, false
	return nil
}

// View is goka's view of the group table, guarded against goka's
// View.close (a workaround, see docs/upstream.md): when Run ends, goka
// (v1.1.17) drops the view's partitions without a lock, and a read at
// that moment raced with it (the race detector found it, with the live
// page asking every 250 ms). Reads hold the read lock and find the view
// closed once Run has begun to stop it; Run takes the write lock before
// it lets goka close the view, so no read is under way then. A view that
// fails by itself closes within goka's Run before Run here returns: reads
// in that moment are not covered, and the program is stopping then.
type View struct {
	build func() (*goka.View, error)

	mu     sync.RWMutex
	v      *goka.View
	closed bool
}

// ErrViewStopped answers reads after the view has stopped.
var ErrViewStopped = errors.New("the view has stopped")

// Run runs the view until ctx ends or the view fails.
func (s *View) Run(ctx context.Context) error {
	vctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.mu.RLock()
	v := s.v
	s.mu.RUnlock()
	done := make(chan error, 1)
	go func() { done <- v.Run(vctx) }()
	var (
		err      error
		finished bool
	)
	select {
	case err = <-done:
		finished = true
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if finished {
		return err
	}
	cancel()
	return <-done
}

// read runs f with the view unless it has stopped.
func (s *View) read(f func(*goka.View)) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false
	}
	f(s.v)
	return true
}

func (s *View) Get(key string) (val any, err error) {
	if !s.read(func(v *goka.View) { val, err = v.Get(key) }) {
		return nil, ErrViewStopped
	}
	return val, err
}

func (s *View) Recovered() (ok bool) {
	s.read(func(v *goka.View) { ok = v.Recovered() })
	return ok
}

func (s *View) CurrentState() goka.ViewState {
	state := goka.ViewStateIdle
	s.read(func(v *goka.View) { state = v.CurrentState() })
	return state
}

func (s *View) Stats(ctx context.Context) *goka.ViewStats {
	stats := &goka.ViewStats{Partitions: map[int32]*goka.TableStats{}}
	s.read(func(v *goka.View) { stats = v.Stats(ctx) })
	return stats
}

// Iterator and IteratorWithRange return iterators that hold the read
// lock until they are released: LevelDB must not be closed while an
// iterator is open. Release them promptly (the stop waits for them), and
// do not read the view otherwise while one is open.
func (s *View) Iterator() (goka.Iterator, error) {
	return s.iterator(func(v *goka.View) (goka.Iterator, error) { return v.Iterator() })
}

func (s *View) IteratorWithRange(start, limit string) (goka.Iterator, error) {
	return s.iterator(func(v *goka.View) (goka.Iterator, error) { return v.IteratorWithRange(start, limit) })
}

func (s *View) iterator(open func(*goka.View) (goka.Iterator, error)) (goka.Iterator, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrViewStopped
	}
	it, err := open(s.v)
	if err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	return &lockedIterator{Iterator: it, unlock: s.mu.RUnlock}, nil
}

// lockedIterator releases the view's read lock with the iterator.
type lockedIterator struct {
	goka.Iterator
	unlock func()
	once   sync.Once
}

func (l *lockedIterator) Release() {
	l.Iterator.Release()
	l.once.Do(l.unlock)
}
