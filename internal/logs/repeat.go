// Package logs holds what the program's output goes through: a warning
// logged once per interval with a count, a writer many goroutines share,
// and goka's logger on slog.
package logs

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Repeat logs a warning that may repeat for every message of a stream
// at most once per interval for each text: the first time at once, and
// then, when it happens again after the interval, once with how many
// times it happened since the line before ("repeated"). A topic full of
// bad records thus gives a line every interval, not a line per record;
// the metrics count every one.
type Repeat struct {
	logger *slog.Logger
	every  time.Duration
	now    func() time.Time // tests set it

	mu    sync.Mutex
	texts map[string]*repeats
}

type repeats struct {
	logged time.Time // when the last line was written
	since  int       // times it happened since, not logged yet
}

func NewRepeat(logger *slog.Logger, every time.Duration) *Repeat {
	return &Repeat{logger: logger, every: every, now: time.Now, texts: map[string]*repeats{}}
}

// Warn logs msg with args, unless msg was logged less than the interval
// ago; then it is only counted, and reported with the next line.
func (r *Repeat) Warn(msg string, args ...any) {
	r.Log(slog.LevelWarn, msg, msg, args...)
}

// Log logs msg at level with args, unless a line of the same key was
// logged less than the interval ago; then it is only counted, and
// reported with the next line of that key. Lines that differ only in a
// detail (a partition, a path) share a key.
func (r *Repeat) Log(level slog.Level, key, msg string, args ...any) {
	r.mu.Lock()
	now := r.now()
	rep, ok := r.texts[key]
	if !ok {
		rep = &repeats{}
		r.texts[key] = rep
	}
	rep.since++
	if ok && now.Sub(rep.logged) < r.every {
		r.mu.Unlock()
		return
	}
	n := rep.since
	rep.logged, rep.since = now, 0
	r.mu.Unlock()
	if n > 1 {
		args = append(args, "repeated", n)
	}
	r.logger.Log(context.Background(), level, msg, args...)
}
