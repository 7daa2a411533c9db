package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/metrics"
	"clicks/internal/status"
	"clicks/internal/web/webtest"
)

// recoverableTable is a memTable whose recovery the test switches on.
type recoverableTable struct {
	*memTable
	recovered atomic.Bool
}

func (r *recoverableTable) Recovered() bool { return r.recovered.Load() }

// newTestFeed returns a feed over an empty table, recovered or not, and
// the router that serves it.
func newTestFeed(t *testing.T, tick time.Duration, recovered bool) (*Feed, *recoverableTable, *Summary, http.Handler) {
	t.Helper()
	table := &recoverableTable{memTable: newMemTable(t)}
	table.recovered.Store(recovered)
	s := NewSummary()
	parts := []status.Part{{Name: "view", Ready: func() (bool, string) { return table.Recovered(), "running" }}}
	lag := func() status.Lag { return status.Lag{View: 0, Processor: -1, At: time.Now()} }
	f := NewFeed(s, table, parts, lag, nil, tick, slog.New(slog.DiscardHandler))
	return f, table, s, NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), Page(f))
}

// runFeed runs f until the test ends.
func runFeed(t *testing.T, f *Feed) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("feed: %v", err)
		}
	})
	return cancel
}

func TestPageIsServedWithItsAssets(t *testing.T) {
	_, _, _, h := newTestFeed(t, time.Hour, true)
	for _, tc := range []struct {
		path, method string
		code         int
		ctype        string
	}{
		{"/", "GET", 200, "text/html; charset=utf-8"},
		{"/", "HEAD", 200, "text/html; charset=utf-8"},
		{"/-/assets/app.js", "GET", 200, "text/javascript; charset=utf-8"},
		{"/-/assets/style.css", "GET", 200, "text/css; charset=utf-8"},
		{"/-/assets/nope.js", "GET", 404, ""},
		{"/-/assets/index.html", "GET", 404, ""},
		{"/-/assets/", "GET", 404, ""},
		{"/", "POST", 405, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.code)
			continue
		}
		if tc.ctype != "" {
			if got := rec.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, got, tc.ctype)
			}
			if rec.Header().Get("Content-Security-Policy") != pageCSP || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s %s: missing the page's security headers: %v", tc.method, tc.path, rec.Header())
			}
		}
	}
}

// The page works offline: none of its files loads anything from another
// host, and every asset the page names is served.
func TestPageIsSelfContained(t *testing.T) {
	_, _, _, h := newTestFeed(t, time.Hour, true)
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(\s*['"]?(https?:)?//`)
	err := fs.WalkDir(pageFiles, "page", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(pageFiles, path)
		if err != nil {
			return err
		}
		if m := external.Find(data); m != nil {
			t.Errorf("%s refers to another host: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	index, err := fs.ReadFile(pageFiles, "page/index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:src|href)="(/-/assets/[^"]+)"`).FindAllSubmatch(index, -1)
	if len(refs) < 2 {
		t.Fatalf("index.html names %d assets, want the script and the style sheet", len(refs))
	}
	for _, ref := range refs {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", string(ref[1]), nil))
		if rec.Code != 200 {
			t.Errorf("GET %s: %d", ref[1], rec.Code)
		}
	}
}

func getSummary(t *testing.T, h http.Handler, query string) (int, pageState) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/-/summary"+query, nil))
	var st pageState
	if rec.Code == 200 {
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("summary %s: %v", rec.Body, err)
		}
	}
	return rec.Code, st
}

// The summary counts the table once the view has recovered, and follows
// it from then on.
func TestSummaryEndpoint(t *testing.T) {
	f, table, s, h := newTestFeed(t, 5*time.Millisecond, false)
	table.set(t, s, "user-1", 4)
	table.set(t, s, "user-2", 9)
	runFeed(t, f)

	if code, st := getSummary(t, h, ""); code != 200 || st.Known || st.Ready {
		t.Fatalf("before recovery: %d %+v, want 200, not known, not ready", code, st)
	}
	table.recovered.Store(true)
	want := func(total, users int64, top string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		var st pageState
		for time.Now().Before(deadline) {
			_, st = getSummary(t, h, "?top=1")
			got, _ := json.Marshal(st.Top)
			if st.Known && st.Total == total && st.Users == users && string(got) == top {
				if !st.Ready || !st.CaughtUp || !st.Connected {
					t.Errorf("recovered, lag 0: ready %v, caught up %v, connected %v", st.Ready, st.CaughtUp, st.Connected)
				}
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("summary %+v, want total %d, users %d, top %s", st, total, users, top)
	}
	want(13, 2, `[{"user":"user-2","clicks":9}]`)
	table.set(t, s, "user-1", 12)
	want(21, 2, `[{"user":"user-1","clicks":12}]`)

	for _, q := range []string{"?top=0", "?top=101", "?top=x"} {
		if code, _ := getSummary(t, h, q); code != 400 {
			t.Errorf("/-/summary%s: %d, want 400", q, code)
		}
	}
}

// The state carries the instance's processor counts when it has one.
func TestSummaryHasProcessorCounts(t *testing.T) {
	table := &recoverableTable{memTable: newMemTable(t)}
	m := metrics.New()
	m.Counted()
	m.Forwarded()
	m.Skipped("no_key")
	f := NewFeed(NewSummary(), table, nil, nil, m.ProcessorCounts, time.Millisecond, slog.New(slog.DiscardHandler))
	h := NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), Page(f))
	_, st := getSummary(t, h, "")
	// Every reason is shown from the start, the one that happened with 1.
	skipped := map[string]int64{}
	for _, r := range clicks.SkipReasons() {
		skipped[r] = 0
	}
	skipped[clicks.SkipNoKey] = 1
	want := &metrics.ProcessorCounts{Counted: 1, Forwarded: 1, Skipped: skipped}
	if !reflect.DeepEqual(st.Processor, want) {
		t.Errorf("processor in the summary: %+v, want %+v", st.Processor, want)
	}

	_, _, _, without := newTestFeed(t, time.Millisecond, true)
	if _, st := getSummary(t, without, ""); st.Processor != nil {
		t.Errorf("an instance without a processor shows %+v", st.Processor)
	}
}

// The event stream sends the state at once and then each change; it ends
// when the feed stops, so the HTTP server can shut down.
func TestEventStream(t *testing.T) {
	f, table, s, h := newTestFeed(t, 5*time.Millisecond, true)
	table.set(t, s, "user-1", 1)
	stop := runFeed(t, f)
	srv := httptest.NewServer(h)
	defer srv.Close()

	res, err := http.Get(srv.URL + "/-/events?top=2")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /-/events: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(res.Body)
	deadline := time.Now().Add(5 * time.Second)
	st := readEvent(t, r)
	for !st.Known && time.Now().Before(deadline) {
		st = readEvent(t, r)
	}
	if !st.Known || st.Total != 1 {
		t.Fatalf("first known state %+v, want total 1", st)
	}
	for i, n := range []int{2, 3, 4} {
		table.set(t, s, "user-"+string(rune('2'+i)), n)
	}
	for st.Total != 10 && time.Now().Before(deadline) {
		st = readEvent(t, r)
	}
	if st.Total != 10 || len(st.Top) != 2 || st.Top[0].User != "user-4" {
		t.Fatalf("state %+v, want total 10 and the top 2 led by user-4", st)
	}

	stop()
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, r); done <- err }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, io.EOF) {
			t.Errorf("stream ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end when the feed stopped")
	}
}

// Clicks per second are averaged over rateWindow.
func TestFeedRate(t *testing.T) {
	f, table, s, _ := newTestFeed(t, time.Hour, true)
	if err := s.Scan(table); err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1000, 0)
	for i := range 21 {
		table.set(t, s, "user-0", i*5) // 5 clicks per half second
		st := f.compute(start.Add(time.Duration(i) * 500 * time.Millisecond))
		if i > 0 && st.Rate != 10 {
			t.Fatalf("tick %d: rate %v, want 10", i, st.Rate)
		}
	}
	if n := len(f.samples); n > int(rateWindow/(500*time.Millisecond))+1 {
		t.Errorf("%d samples kept, more than the window needs", n)
	}
	// No clicks for the whole window: the rate falls to zero.
	st := f.compute(start.Add(10*time.Second + rateWindow))
	if st.Rate != 0 {
		t.Errorf("rate %v after a quiet window, want 0", st.Rate)
	}
}

// With 100,000 users the page's answers stay small: the top users asked
// for, and the numbers of all.
func TestSummaryOfManyUsers(t *testing.T) {
	f, table, s, h := newTestFeed(t, time.Hour, true)
	const users = 100_000
	for i := range users {
		table.set(t, s, fmt.Sprintf("user-%06d", i), i%1000+1)
	}
	f.maybeScan(time.Now())
	f.publish(f.compute(time.Now()))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/-/summary?top=100", nil))
	var st pageState
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("%d %v", rec.Code, err)
	}
	wantTotal := int64(0)
	for i := range users {
		wantTotal += int64(i%1000 + 1)
	}
	if !st.Known || st.Users != users || st.Total != wantTotal || len(st.Top) != 100 {
		t.Fatalf("known %v, users %d, total %d, %d top users; want %d users, total %d, 100 top", st.Known, st.Users, st.Total, len(st.Top), users, wantTotal)
	}
	if st.Top[0] != (RankedUser{"user-000999", 1000}) || st.Top[99].Clicks != 1000 {
		t.Errorf("top users %v ... %v, want 100 users with 1000 clicks from user-000999 on", st.Top[0], st.Top[99])
	}
	if n := rec.Body.Len(); n > 8<<10 {
		t.Errorf("the summary of 100 users is %d bytes", n)
	}
}

// readEvent reads the next state of the page's event stream.
func readEvent(t *testing.T, r *bufio.Reader) pageState {
	t.Helper()
	var st pageState
	webtest.ReadEvent(t, r, &st)
	return st
}
