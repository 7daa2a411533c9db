package web

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every profile is served under /-/debug/pprof/ as itself, not as the
// index page: the heap profile as a gzipped protocol buffer, the
// goroutines as text.
func TestDebugHandlerServesEachProfile(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(DebugHandler())
	defer srv.Close()
	get := func(path string) []byte {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d (%v)", path, res.StatusCode, err)
		}
		return body
	}
	if index := get("/-/debug/pprof/"); !bytes.Contains(index, []byte("Types of profiles available")) {
		t.Errorf("the index is not pprof's:\n%s", index)
	}
	for _, name := range []string{"heap", "allocs", "goroutine", "block", "mutex"} {
		if p := get("/-/debug/pprof/" + name); !bytes.HasPrefix(p, []byte{0x1f, 0x8b}) {
			t.Errorf("%s: not a gzipped profile: %.60q", name, p)
		}
	}
	if g := get("/-/debug/pprof/goroutine?debug=1"); !strings.HasPrefix(string(g), "goroutine profile:") {
		t.Errorf("goroutine?debug=1: %.60q", g)
	}
}
