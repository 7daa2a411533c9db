package app

import (
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"clicks/internal/clickstest"
)

// -pprof serves Go's profiles on a loopback listener of their own (a CPU
// profile outlasts the view's 10 s write timeout), and not on the view's
// port.
func TestProfilesServedWithPprof(t *testing.T) {
	t.Parallel()
	in := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-emit=false", "-pprof", "-pprof-listen", "127.0.0.1:0")
	m := regexp.MustCompile(`msg="profiles served" url=(http://127\.0\.0\.1:\d+/-/debug/pprof/)`).FindStringSubmatch(in.Log())
	if m == nil {
		t.Fatalf("no line saying where the profiles are:\n%s", in.Log())
	}
	for _, path := range []string{"profile?seconds=1", "heap", "goroutine?debug=1"} {
		client := http.Client{Timeout: 30 * time.Second}
		res, err := client.Get(m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes (%v)", path, res.StatusCode, len(body), err)
		}
	}
	if code, _, err := in.Get("/-/debug/pprof/heap"); err != nil || code != http.StatusNotFound {
		t.Errorf("the view's port answers /-/debug/pprof/heap: %d (%v), want 404", code, err)
	}
}
