package main

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
			"user-3": &user{Clicks: 153},
			"odd":    "not a user",
		},
		errs: map[string]error{"broken": errors.New("leveldb: corrupted")},
	}
	var logs strings.Builder
	h := newRouter(view, slog.New(slog.NewTextHandler(&logs, nil)))

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
	h := newRouter(&fakeView{values: map[string]any{"user-3": &user{Clicks: 1}}}, slog.New(slog.DiscardHandler))
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
