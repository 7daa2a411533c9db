package web

import (
	"clicks/internal/clicks"
	"clicks/internal/status"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeView is a clickReader with fixed answers.
type fakeView struct {
	recovered bool
	values    map[string]any
	errs      map[string]error
}

func (f *fakeView) Recovered() bool { return f.recovered }
func (f *fakeView) Get(key string) (any, error) {
	if err := f.errs[key]; err != nil {
		return nil, err
	}
	return f.values[key], nil
}

func TestViewHandler(t *testing.T) {
	view := &fakeView{
		recovered: true,
		values: map[string]any{
			"user-3": &clicks.User{Clicks: 153},
			"odd":    "not a user",
		},
		errs: map[string]error{"broken": errors.New("leveldb: corrupted")},
	}
	var logs strings.Builder
	h := NewRouter(view, nil, slog.New(slog.NewTextHandler(&logs, nil)))

	tests := []struct {
		name, method, path string
		wantStatus         int
		wantBody           string // exact, or "" to check only that it is a JSON error
	}{
		{"known user", "GET", "/user-3", 200, `{"Clicks":153}`},
		{"head", "HEAD", "/user-3", 200, ""},
		{"unknown user", "GET", "/user-4", 404, `{"error":"no clicks for user \"user-4\""}`},
		{"storage error", "GET", "/broken", 500, ""},
		{"foreign value", "GET", "/odd", 500, ""},
		{"root", "GET", "/", 404, ""},
		{"two segments", "GET", "/user-3/clicks", 404, ""},
		{"encoded slash", "GET", "/user%2F3", 404, ""},
		{"post", "POST", "/user-3", 405, ""},
		{"delete", "DELETE", "/user-3", 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("%s %s: status %d, want %d (body %s)", tc.method, tc.path, res.StatusCode, tc.wantStatus, body)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("missing X-Content-Type-Options: nosniff")
			}
			if tc.method == "HEAD" {
				return
			}
			if tc.wantBody != "" {
				if string(body) != tc.wantBody {
					t.Errorf("body %s, want %s", body, tc.wantBody)
				}
				return
			}
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Errorf("body %q is not a JSON error (%v)", body, err)
			}
			if strings.Contains(e.Error, "leveldb") {
				t.Errorf("internal detail leaked to the client: %q", e.Error)
			}
		})
	}
	if !strings.Contains(logs.String(), "leveldb: corrupted") {
		t.Errorf("storage error was not logged; log:\n%s", logs.String())
	}
}

func TestViewHandlerRecovering(t *testing.T) {
	h := NewRouter(&fakeView{values: map[string]any{"user-3": &clicks.User{Clicks: 1}}}, nil, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/user-3", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d while recovering, want 503", rec.Code)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("body %s is not a JSON error", rec.Body)
	}
}

func TestDisplayAddr(t *testing.T) {
	for in, want := range map[string]string{
		"[::]:9095":         "localhost:9095",
		"0.0.0.0:9095":      "localhost:9095",
		"127.0.0.1:41234":   "localhost:41234",
		"192.168.1.20:9095": "192.168.1.20:9095",
	} {
		addr, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := displayAddr(addr); got != want {
			t.Errorf("displayAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

// countingView counts the reads that reach it.
type countingView struct {
	fakeView
	gets int
}

func (c *countingView) Get(key string) (any, error) {
	c.gets++
	return c.fakeView.Get(key)
}

func TestViewHandlerRefusesLongKeys(t *testing.T) {
	view := &countingView{fakeView: fakeView{recovered: true}}
	h := NewRouter(view, nil, slog.New(slog.DiscardHandler))
	for _, n := range []int{maxKeyBytes + 1, 8 << 10} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/"+strings.Repeat("k", n), nil))
		if rec.Code != http.StatusRequestURITooLong {
			t.Errorf("key of %d bytes: status %d, want 414", n, rec.Code)
		}
	}
	if view.gets != 0 {
		t.Errorf("%d over-long keys reached the view", view.gets)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/"+strings.Repeat("k", maxKeyBytes), nil))
	if rec.Code != http.StatusNotFound || view.gets != 1 {
		t.Errorf("key of %d bytes: status %d after %d reads, want 404 from the view", maxKeyBytes, rec.Code, view.gets)
	}
}

func TestHTTPServerLimits(t *testing.T) {
	srv := NewServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Errorf("a timeout is unset: %+v", srv)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes = %d, want a small limit", srv.MaxHeaderBytes)
	}
}

// A client that sends its headers a byte at a time (slowloris) is cut off
// by the read-header timeout instead of holding a connection for ever.
func TestHTTPServerCutsOffSlowClients(t *testing.T) {
	srv := NewServer(NewRouter(&fakeView{recovered: true}, nil, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	srv.ReadHeaderTimeout = 300 * time.Millisecond // the mechanism, faster than the default
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(conn) // returns when the server closes
		closed <- err
	}()
	start := time.Now()
	for _, b := range []byte("GET /user-3 HTTP/1.1\r\nHost: localhost\r\nX-Slow: ") {
		if _, err := conn.Write([]byte{b}); err != nil {
			break // cut off while writing
		}
		select {
		case <-closed:
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("cut off only after %v", d)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the server kept a slow client's connection open")
	}
}

// FuzzRouter sends arbitrary methods, paths and headers: the router never
// panics, answers JSON, and never answers 200 for a key without clicks.
func FuzzRouter(f *testing.F) {
	for _, seed := range []struct{ method, path, header string }{
		{"GET", "/user-3", ""},
		{"HEAD", "/user-3", ""},
		{"GET", "/user-4", ""},
		{"GET", "/", ""},
		{"GET", "/user-3/", ""},
		{"GET", "/user%2F3", ""},
		{"GET", "/../user-3", ""},
		{"GET", "/%2e%2e/user-3", ""},
		{"GET", "/\xff\xfe", ""},
		{"GET", "/" + strings.Repeat("a", 8<<10), ""},
		{"POST", "/user-3", "Content-Type: application/json"},
		{"PUT", "/user-3", ""},
		{"DELETE", "/user-3", ""},
		{"OPTIONS", "*", ""},
		{"GET", "/user-3?x=%zz", "Accept: */*"},
	} {
		f.Add(seed.method, seed.path, seed.header)
	}
	view := &fakeView{recovered: true, values: map[string]any{"user-3": &clicks.User{Clicks: 153}}}
	h := NewRouter(view, nil, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, method, path, header string) {
		req, err := http.NewRequest(method, "http://localhost", nil)
		if err != nil {
			return // not a request a server could receive
		}
		req.URL.Path = path
		req.RequestURI = path
		if k, v, ok := strings.Cut(header, ":"); ok {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			if method != "GET" && method != "HEAD" {
				t.Fatalf("%s %q answered 200", method, path)
			}
			if body := rec.Body.String(); method == "GET" && body != `{"Clicks":153}` {
				t.Fatalf("%s %q answered 200 with %q: only user-3 has clicks", method, path, body)
			}
		}
		if rec.Code != http.StatusMovedPermanently && rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s %q: status %d with Content-Type %q", method, path, rec.Code, rec.Header().Get("Content-Type"))
		}
	})
}

// The router's shortcut for GET /{key} answers every request exactly as
// gorilla/mux alone does: the same status, body and headers.
func FuzzUserRouter(f *testing.F) {
	for _, seed := range []struct{ method, path string }{
		{"GET", "/user-3"}, {"HEAD", "/user-3"}, {"GET", "/nobody"}, {"GET", "/"}, {"GET", "/."}, {"GET", "/.."},
		{"GET", "/user-3/"}, {"GET", "//user-3"}, {"GET", "/a/../user-3"}, {"GET", "/./user-3"}, {"GET", "user-3"},
		{"GET", ""}, {"GET", "*"}, {"POST", "/user-3"}, {"DELETE", "/"}, {"GET", "/-"}, {"GET", "/-/healthy"},
		{"GET", "/-/nope"}, {"GET", "/\xff"}, {"GET", "/" + strings.Repeat("k", 300)}, {"get", "/user-3"}, {"GET", "/a b"},
	} {
		f.Add(seed.method, seed.path)
	}
	view := &fakeView{recovered: true, values: map[string]any{"user-3": &clicks.User{Clicks: 153}, ".": &clicks.User{Clicks: 1}}}
	logger := slog.New(slog.DiscardHandler)
	ready := Ready([]status.Part{{Name: "view", Ready: func() (bool, string) { return true, "running" }}})
	fast, plain := NewRouter(view, nil, logger, ready), newMuxRouter(view, nil, logger, ready)
	f.Fuzz(func(t *testing.T, method, path string) {
		req, err := http.NewRequest(method, "http://localhost", nil)
		if err != nil {
			return // not a request a server could receive
		}
		req.URL.Path, req.RequestURI = path, path
		got, want := httptest.NewRecorder(), httptest.NewRecorder()
		fast.ServeHTTP(got, req.Clone(req.Context()))
		plain.ServeHTTP(want, req.Clone(req.Context()))
		if got.Code != want.Code || got.Body.String() != want.Body.String() || !reflect.DeepEqual(got.Header(), want.Header()) {
			t.Fatalf("%s %q: the shortcut answers %d %q %v; mux %d %q %v", method, path,
				got.Code, got.Body, got.Header(), want.Code, want.Body, want.Header())
		}
	})
}
