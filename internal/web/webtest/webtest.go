// Package webtest reads the live page's event stream, for tests.
package webtest

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
)

// ReadEvent reads the next data event of a server-sent event stream into
// v, a pointer to what the page's state is decoded as.
func ReadEvent(t testing.TB, r *bufio.Reader, v any) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			if err := json.Unmarshal([]byte(data), v); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			return
		}
	}
}
