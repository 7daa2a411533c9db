package logs

import (
	"fmt"
	"io"
	"sync"
)

// Locked is a writer many goroutines may share: each Write comes out
// whole. The program's stdout is one (the processor's partitions print
// their [proc] lines concurrently), and so are the buffers tests hand the
// program for its output.
type Locked[W io.Writer] struct {
	mu sync.Mutex
	w  W
}

// Lock returns w behind a lock.
func Lock[W io.Writer](w W) *Locked[W] {
	return &Locked[W]{w: w}
}

func (l *Locked[W]) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// With runs f on the writer under the lock: to flush it, for example
// out.With((*bufio.Writer).Flush).
func (l *Locked[W]) With(f func(W) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return f(l.w)
}

// String returns what the writer holds, if it is a fmt.Stringer (a
// bytes.Buffer, a strings.Builder), and "" otherwise.
func (l *Locked[W]) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := any(l.w).(fmt.Stringer); ok {
		return s.String()
	}
	return ""
}

// Flush flushes the writer, if it is one that buffers (a bufio.Writer).
func (l *Locked[W]) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := any(l.w).(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}
