package clickstest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 3, "a\nb\nc"},
		{"a\nb\nc\n", 5, "a\nb\nc"},
		{"a\nb\nc\n", 0, ""},
		{"", 3, ""},
	} {
		if got := LastLines(tc.s, tc.n); got != tc.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

func TestKeysAreNew(t *testing.T) {
	a, b := Keys(3), Keys(3)
	if len(a) != 3 || a[0] == b[0] || a[0] == a[1] {
		t.Errorf("Keys(3) gave %v, then %v: want three keys no other call gives", a, b)
	}
}

// fatalTB records what Fatalf says and ends the goroutine, as testing's
// does.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	panic(f)
}

// run calls fn with f, as a test would, and returns what it failed
// with, "" if it did not.
func (f *fatalTB) run(fn func(testing.TB)) (msg string) {
	defer func() {
		if r := recover(); r != nil && r != f {
			panic(r)
		}
		f.mu.Lock()
		msg = f.msg
		f.mu.Unlock()
	}()
	fn(f)
	return ""
}

func TestWaitFor(t *testing.T) {
	calls := 0
	start := time.Now()
	msg := (&fatalTB{TB: t}).run(func(tb testing.TB) {
		WaitFor(tb, time.Second, "the third call", func() (bool, string) {
			calls++
			return calls == 3, fmt.Sprint(calls)
		})
	})
	if msg != "" || calls != 3 {
		t.Errorf("WaitFor failed with %q after %d calls, want it done after 3", msg, calls)
	}
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Errorf("three calls in %v: WaitFor does not pause between them", took)
	}

	msg = (&fatalTB{TB: t}).run(func(tb testing.TB) {
		WaitFor(tb, 100*time.Millisecond, "nothing", func() (bool, string) { return false, "still nothing" })
	})
	for _, want := range []string{"100ms", "nothing", "still nothing"} {
		if !strings.Contains(msg, want) {
			t.Errorf("WaitFor failed with %q, which does not say %q", msg, want)
		}
	}
}
