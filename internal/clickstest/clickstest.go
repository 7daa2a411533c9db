// Package clickstest runs the program for tests, in the test's own process
// (StartInProcess) or built once and started as a process of its own
// (StartProcess), and reads what it serves, logs and writes to Kafka.
// Every wait is WaitFor's.
package clickstest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"clicks/internal/logs"
)

// WaitFor calls cond until it says done, about every 20 ms (a check that
// takes longer is made as often as it takes, up to every 200 ms), and
// fails the test if that takes longer than within, saying what it waited
// for and what cond saw last.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() (done bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		start := time.Now()
		done, seen := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last seen: %s", within, what, seen)
		}
		time.Sleep(min(max(time.Since(start), 20*time.Millisecond), 200*time.Millisecond))
	}
}

// Buffer collects what the program writes, for the test to read while it
// runs.
type Buffer = logs.Locked[*bytes.Buffer]

// NewBuffer returns an empty Buffer.
func NewBuffer() *Buffer { return logs.Lock(new(bytes.Buffer)) }

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	if n <= 0 {
		return ""
	}
	s = strings.TrimRight(s, "\n")
	end := len(s)
	for range n {
		i := strings.LastIndexByte(s[:end], '\n')
		if i < 0 {
			return s
		}
		end = i
	}
	return s[end+1:]
}

// Keys returns n user keys that no earlier run has used, so that a test
// can expect exact counts even on a long-lived cluster.
func Keys(n int) []string {
	run := rand.Uint32()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("test-%08x-user-%d", run, i)
	}
	return keys
}

// FreePort returns a port nobody listens on right now, for a broker that
// must keep its address across restarts.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
