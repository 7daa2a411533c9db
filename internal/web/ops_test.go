package web

import (
	"clicks/internal/clicks"
	"clicks/internal/metrics"
	"clicks/internal/status"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
)

// sliceIterator is a goka.Iterator over sorted keys, as a view's is.
type sliceIterator struct {
	keys   []string
	values map[string]any
	i      int
}

func (s *sliceIterator) Next() bool  { s.i++; return s.i <= len(s.keys) }
func (s *sliceIterator) Err() error  { return nil }
func (s *sliceIterator) Key() string { return s.keys[s.i-1] }
func (s *sliceIterator) Value() (any, error) {
	v := s.values[s.Key()]
	if err, ok := v.(error); ok {
		return nil, err
	}
	return v, nil
}
func (s *sliceIterator) Release() {}

// Seek positions s so that Next gives the first key at or above key, as
// goka's merge of the partitions' iterators does.
func (s *sliceIterator) Seek(key string) bool {
	s.i = sort.SearchStrings(s.keys, key)
	return s.i < len(s.keys)
}

// fakeTable is a clickLister over a map.
type fakeTable map[string]any

func (f fakeTable) IteratorWithRange(start, limit string) (goka.Iterator, error) {
	it := &sliceIterator{values: f}
	for k := range f {
		if strings.HasPrefix(k, start) {
			it.keys = append(it.keys, k)
		}
	}
	sort.Strings(it.keys)
	return it, nil
}

type listAnswer struct {
	Users []struct {
		User   string
		Clicks int
	}
	More bool
	Next string
}

func getList(t *testing.T, h http.Handler, query string) (int, listAnswer) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/-/clicks"+query, nil))
	var a listAnswer
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			t.Fatalf("GET /-/clicks%s: %v in %s", query, err, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	return rec.Code, a
}

func TestListClicks(t *testing.T) {
	table := fakeTable{}
	for i := range 100_000 {
		table[fmt.Sprintf("user-%06d", i)] = &clicks.User{Clicks: i}
	}
	table["other"] = &clicks.User{Clicks: 1}
	table["user-broken"] = errors.New("decode user: bad json")
	h := NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), List(table))

	code, a := getList(t, h, "")
	if code != 200 || len(a.Users) != defaultListLimit || !a.More {
		t.Fatalf("default: %d, %d users, more %v; want 200, %d, true", code, len(a.Users), a.More, defaultListLimit)
	}
	if a.Users[0].User != "other" || a.Users[1].User != "user-000000" {
		t.Errorf("not in key order: %v", a.Users[:2])
	}
	code, a = getList(t, h, "?prefix=user-0999&limit=1000")
	if code != 200 || len(a.Users) != 100 || a.More {
		t.Fatalf("prefix: %d, %d users, more %v; want 200, 100, false", code, len(a.Users), a.More)
	}
	if u := a.Users[99]; u.User != "user-099999" || u.Clicks != 99999 {
		t.Errorf("last of prefix: %+v", u)
	}
	code, a = getList(t, h, "?prefix=user-b")
	if code != 200 || len(a.Users) != 0 {
		t.Errorf("unreadable value: %d %+v, want it skipped", code, a)
	}
	code, a = getList(t, h, "?prefix=nobody")
	if code != 200 || a.Users == nil && a.More {
		t.Errorf("no match: %d %+v", code, a)
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?prefix=" + strings.Repeat("p", 300)} {
		if code, _ := getList(t, h, q); code != http.StatusBadRequest {
			t.Errorf("GET /-/clicks%s: %d, want 400", q, code)
		}
	}
}

// Paging with the cursor returns every user once, in key order, also
// while counts change and users are added between the pages.
func TestListClicksPages(t *testing.T) {
	table := fakeTable{}
	for i := range 25_000 {
		table[fmt.Sprintf("user-%06d", i)] = &clicks.User{Clicks: i}
	}
	table["other"] = &clicks.User{Clicks: 1}
	h := NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), List(table))
	for _, prefix := range []string{"", "user-"} {
		seen := map[string]int{}
		var last string
		after, pages := "", 0
		for {
			code, a := getList(t, h, "?limit=1000&prefix="+prefix+"&after="+after)
			if code != 200 {
				t.Fatalf("page %d: %d", pages, code)
			}
			pages++
			for _, u := range a.Users {
				if u.User <= last {
					t.Fatalf("%q after %q: not in key order", u.User, last)
				}
				last = u.User
				seen[u.User]++
			}
			// Counts change and a user is added before the cursor.
			table[fmt.Sprintf("user-%06d", pages)] = &clicks.User{Clicks: -pages}
			table[fmt.Sprintf("a-new-user-%d", pages)] = &clicks.User{Clicks: 1}
			if !a.More {
				if a.Next != "" {
					t.Errorf("last page has next %q", a.Next)
				}
				break
			}
			if a.Next != a.Users[len(a.Users)-1].User {
				t.Fatalf("next %q, want the last user of the page %q", a.Next, a.Users[len(a.Users)-1].User)
			}
			after = a.Next
		}
		want := 25_000
		if prefix == "" {
			want++ // other
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("prefix %q: %s listed %d times", prefix, k, n)
			}
		}
		for i := range 25_000 {
			if k := fmt.Sprintf("user-%06d", i); seen[k] != 1 {
				t.Fatalf("prefix %q: %s listed %d times", prefix, k, seen[k])
			}
		}
		if len(seen) < want || pages < 25 {
			t.Errorf("prefix %q: %d users in %d pages, want all %d in 25 or more", prefix, len(seen), pages, want)
		}
	}
	// A cursor past every key: an empty last page; one over the key limit: 400.
	if code, a := getList(t, h, "?after=zzz"); code != 200 || len(a.Users) != 0 || a.More {
		t.Errorf("after the last key: %d %+v", code, a)
	}
	if code, _ := getList(t, h, "?after="+strings.Repeat("k", 300)); code != http.StatusBadRequest {
		t.Errorf("a cursor of 300 bytes: %d, want 400", code)
	}
}

func TestListClicksEmptyTable(t *testing.T) {
	h := NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), List(fakeTable{}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/-/clicks", nil))
	if rec.Code != 200 || rec.Body.String() != `{"users":[],"more":false}` {
		t.Errorf("empty table: %d %s", rec.Code, rec.Body)
	}
}

func TestHealthyAndReady(t *testing.T) {
	ready := false
	parts := []status.Part{
		{Name: "view", Ready: func() (bool, string) { return true, "running" }, Progress: func() float64 { return 1 }},
		{Name: "processor", Ready: func() (bool, string) {
			if ready {
				return true, "running"
			}
			return false, "setting up"
		}, Progress: func() float64 { return 0.4256 }},
	}
	h := NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), Ready(parts))
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	if rec := get("/-/healthy"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "alive") {
		t.Errorf("/-/healthy: %d %s", rec.Code, rec.Body)
	}
	rec := get("/-/ready")
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || rec.Body.String() != `{"ready":false,"parts":{"processor":"setting up","view":"running"},"progress":{"processor":0.425,"view":1}}` {
		t.Errorf("/-/ready while setting up: %d %s", rec.Code, rec.Body)
	}
	ready = true
	if rec := get("/-/ready"); rec.Code != 200 || rec.Body.String() != `{"ready":true,"parts":{"processor":"running","view":"running"}}` {
		t.Errorf("/-/ready when ready: %d %s", rec.Code, rec.Body)
	}
	// A single segment stays a user key, even one that looks operational.
	if rec := get("/metrics"); rec.Code != 404 || !strings.Contains(rec.Body.String(), `no clicks for user \"metrics\"`) {
		t.Errorf("/metrics: %d %s, want the view's answer for user \"metrics\"", rec.Code, rec.Body)
	}
	if rec := get("/-/nothing"); rec.Code != 404 {
		t.Errorf("/-/nothing: %d", rec.Code)
	}
}

// Every operational path answers GET and HEAD only: another method gets
// 405 with Allow, not 404, and goka's own pages answer it too.
func TestOpsAnswer405ForOtherMethods(t *testing.T) {
	tt := tester.New(t)
	view, err := clicks.NewView(nil, goka.WithViewTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	f, _, _, _ := newTestFeed(t, time.Millisecond, true)
	h := NewRouter(&fakeView{recovered: true}, metrics.New(), slog.New(slog.DiscardHandler),
		Ready(nil), List(fakeTable{}), Page(f), GokaPages(view, nil))
	paths := []string{"/-/events", "/-/clicks", "/-/assets/app.js", "/-/summary", "/-/ready", "/-/healthy", "/-/metrics", "/-/monitor/", "/-/query/", "/"}
	for _, path := range paths {
		for _, method := range []string{"POST", "PUT", "DELETE", "TRACE", "PATCH"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405, Allow GET, HEAD", method, path, rec.Code, rec.Header().Get("Allow"))
			}
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/-/monitor/", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET /-/monitor/: %d, want 200", rec.Code)
	}
}
