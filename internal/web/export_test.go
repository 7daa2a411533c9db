package web

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clicks/internal/clicks"

	"github.com/lovoo/goka"
)

// countingTable is a fakeTable that counts the iterators open and can
// fail the n-th one. Its keys are sorted once, so that a table of many
// users is cheap to iterate chunk by chunk.
type countingTable struct {
	fakeTable
	open, opened atomic.Int64
	failAt       int64 // 0: never
	sorted       []string
}

func (c *countingTable) IteratorWithRange(start, limit string) (goka.Iterator, error) {
	if n := c.opened.Add(1); n == c.failAt {
		return nil, errors.New("view stopped")
	}
	if len(c.sorted) != len(c.fakeTable) {
		c.sorted = slices.Sorted(maps.Keys(c.fakeTable))
	}
	from := sort.SearchStrings(c.sorted, start)
	to := from
	for to < len(c.sorted) && strings.HasPrefix(c.sorted[to], start) {
		to++
	}
	c.open.Add(1)
	return &releaseCounting{Iterator: &sliceIterator{keys: c.sorted[from:to], values: c.fakeTable}, open: &c.open}, nil
}

type releaseCounting struct {
	goka.Iterator
	open *atomic.Int64
}

func (r *releaseCounting) Release() { r.open.Add(-1); r.Iterator.Release() }

func usersTable(n int) fakeTable {
	t := fakeTable{}
	for i := range n {
		t[fmt.Sprintf("user-%06d", i)] = &clicks.User{Clicks: i}
	}
	return t
}

// The NDJSON export has every user once, in key order, with its count,
// and ends saying it is complete, in a last line and in the trailer.
func TestExportNDJSON(t *testing.T) {
	table := &countingTable{fakeTable: usersTable(25_000)}
	table.fakeTable["other"] = &clicks.User{Clicks: 3}
	h := NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), Export(table))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/-/export?prefix=user-", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%d %s", rec.Code, rec.Header())
	}
	lines := strings.Split(strings.TrimSuffix(rec.Body.String(), "\n"), "\n")
	if len(lines) != 25_001 {
		t.Fatalf("%d lines, want 25,000 users and the end: %.300s", len(lines), rec.Body)
	}
	for i, line := range lines[:25_000] {
		var u struct {
			User   string
			Clicks int
		}
		if err := json.Unmarshal([]byte(line), &u); err != nil || u.User != fmt.Sprintf("user-%06d", i) || u.Clicks != i {
			t.Fatalf("line %d: %s (%v)", i, line, err)
		}
	}
	if end := lines[25_000]; end != `{"complete":true,"users":25000}` {
		t.Errorf("last line %s", end)
	}
	if got := rec.Result().Trailer.Get(exportTrailer); got != "complete; users=25000" {
		t.Errorf("trailer %q", got)
	}
	if n := table.open.Load(); n != 0 {
		t.Errorf("%d iterators still open", n)
	}
	if n := table.opened.Load(); n < 25 {
		t.Errorf("the view was read in %d pieces, want one per %d users", n, exportChunk)
	}
}

// CSV, and an export that cannot read the table to its end says so.
func TestExportCSVAndIncomplete(t *testing.T) {
	table := &countingTable{fakeTable: usersTable(5_000)}
	table.fakeTable[`a "quoted", user`] = &clicks.User{Clicks: 1}
	h := NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), Export(table))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/-/export?format=csv", nil))
	rows, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil || len(rows) != 5_002 || rows[0][0] != "user" || rows[1][0] != `a "quoted", user` || rows[5_001][0] != "user-004999" || rows[5_001][1] != "4999" {
		t.Fatalf("CSV: %v, %d rows: %v ... %v", err, len(rows), rows[:2], rows[len(rows)-1])
	}
	if got := rec.Result().Trailer.Get(exportTrailer); got != "complete; users=5001" {
		t.Errorf("trailer %q", got)
	}

	table = &countingTable{fakeTable: usersTable(5_000), failAt: 3}
	h = NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), Export(table))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/-/export", nil))
	body := strings.TrimSuffix(rec.Body.String(), "\n")
	if last := body[strings.LastIndex(body, "\n")+1:]; last != `{"complete":false,"users":2000}` {
		t.Errorf("last line of a broken export: %s", last)
	}
	if got := rec.Result().Trailer.Get(exportTrailer); got != "incomplete; users=2000" {
		t.Errorf("trailer %q", got)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/-/export?format=xml", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "csv") {
		t.Errorf("format=xml: %d %s, want 400 naming the formats", rec.Code, rec.Body)
	}
}

// A client that goes away mid-export ends it: the handler returns and no
// iterator stays open, so the view is not held.
func TestExportClientGone(t *testing.T) {
	table := &countingTable{fakeTable: usersTable(200_000)}
	done := make(chan struct{})
	router := NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), Export(table))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if strings.HasPrefix(r.URL.Path, "/-/export") {
				close(done)
			}
		}()
		router.ServeHTTP(w, r)
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/-/export")
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, `{"user":"user-000000"`) {
		t.Fatalf("first line %q (%v)", line, err)
	}
	res.Body.Close() // gone, with most of the export unread
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the export went on 20 s after its client left")
	}
	if n := table.open.Load(); n != 0 {
		t.Errorf("%d iterators open after the client left", n)
	}
	if n := table.opened.Load(); n >= 200 {
		t.Errorf("the export read all %d chunks for a client that left", n)
	}
	_, _ = io.Copy(io.Discard, res.Body)
}

// A client that stops reading does not hold the view: while the export
// waits to write, no iterator is open, and the view answers others.
func TestExportSlowClientDoesNotHoldTheView(t *testing.T) {
	table := &countingTable{fakeTable: usersTable(300_000)}
	router := NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler), Export(table), List(table))
	srv := httptest.NewServer(router)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/-/export")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	// Read nothing: once the connection's buffers are full, the export
	// waits in a write; the chunks read from the view stop growing.
	var last int64 = -1
	deadline := time.Now().Add(20 * time.Second)
	for {
		time.Sleep(200 * time.Millisecond)
		n := table.opened.Load()
		if n == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export never waited for its client: %d chunks read", n)
		}
		last = n
	}
	if last >= 300 {
		t.Fatalf("the whole table was read (%d chunks) for a client that read nothing", last)
	}
	if n := table.open.Load(); n != 0 {
		t.Errorf("%d iterators open while the export waits for its client", n)
	}
	if code, a := getList(t, router, "?prefix=user-0000&limit=5"); code != 200 || len(a.Users) != 5 {
		t.Errorf("the listing beside a waiting export: %d %+v", code, a)
	}
	// Reading on, the client gets the whole export.
	lines := bufio.NewScanner(res.Body)
	n, lastLine := 0, ""
	for lines.Scan() {
		n++
		lastLine = lines.Text()
	}
	if n != 300_001 || lastLine != `{"complete":true,"users":300000}` {
		t.Errorf("after waiting: %d lines, last %q", n, lastLine)
	}
}
