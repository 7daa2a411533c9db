package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"clicks/internal/metrics"
	"clicks/internal/status"
)

// The live page at GET /: every user's clicks as a table and a bar chart,
// the total, clicks per second and the view's state, updated live.
//
// It is pushed with server-sent events rather than polled: one
// connection per open page, a change reaches the page within one feed
// tick instead of one polling period, the browser's EventSource
// reconnects by itself, and the connection's state is the "connected"
// the page shows. Every message carries the whole state the page shows
// (at most maxTop users), so a page that missed messages is right again
// with the next one.

//go:embed page
var pageFiles embed.FS

// pageCSP keeps the page to its own assets: nothing from elsewhere is
// loaded, so it works offline and nothing can be injected.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// pageHandler serves the page, and its assets under /-/assets/.
func pageHandler() (page, assets http.Handler) {
	secure := func(h http.Header) {
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
	}
	page = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w.Header())
		http.ServeFileFS(w, r, pageFiles, "page/index.html")
	})
	assets = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/-/assets/")
		if name == "" || name == "index.html" || strings.ContainsAny(name, "/\\") {
			writeError(w, http.StatusNotFound, "no such asset")
			return
		}
		secure(w.Header())
		http.ServeFileFS(w, r, pageFiles, "page/"+name)
	})
	return page, assets
}

// pageState is what the page shows, as JSON.
type pageState struct {
	Known     bool                     `json:"known"` // false until the table has been counted once
	Total     int64                    `json:"total"`
	Users     int64                    `json:"users"`
	Rate      float64                  `json:"rate"` // clicks per second over the last rateWindow
	Top       []RankedUser             `json:"top"`  // best first, at most maxTop
	Ready     bool                     `json:"ready"`
	CaughtUp  bool                     `json:"caughtUp"`  // the view has read all of the table
	Connected bool                     `json:"connected"` // the brokers answered the last lag measurement
	Parts     map[string]partState     `json:"parts"`
	Processor *metrics.ProcessorCounts `json:"processor,omitempty"` // this instance's processor; absent without one
}

type partState struct {
	State string `json:"state"`
	Ready bool   `json:"ready"`
	Lag   int64  `json:"lag"` // records not read yet; -1 when unknown
}

// rateWindow is how far back clicks per second are averaged, so the rate
// does not jump with every tick.
const rateWindow = 10 * time.Second

// Feed computes the page's state every tick and hands the latest to
// every open page. Slow pages skip states instead of queueing them.
type Feed struct {
	summary *Summary
	table   Scannable
	parts   []status.Part
	lag     func() status.Lag               // nil: not measured
	counts  func() *metrics.ProcessorCounts // nil: no processor in this instance
	tick    time.Duration
	logger  *slog.Logger

	samples  []rateSample // totals of the last rateWindow, oldest first
	lastScan time.Time

	mu      sync.Mutex
	latest  *pageState
	encoded []byte        // latest, whole, to tell changes
	changed chan struct{} // closed when latest is replaced
	done    chan struct{} // closed when Run ends
}

// Scannable is what the feed needs of the view: to know it has
// recovered, and to count it.
type Scannable interface {
	Stored
	Recovered() bool
}

type rateSample struct {
	at    time.Time
	total int64
}

// NewFeed makes the page's feed: the summary s of table, the parts' state, their
// lag (nil: not measured) and the processor's counts (nil: no processor
// here), computed every tick.
func NewFeed(s *Summary, table Scannable, parts []status.Part, lag func() status.Lag, counts func() *metrics.ProcessorCounts, tick time.Duration, logger *slog.Logger) *Feed {
	f := &Feed{summary: s, table: table, parts: parts, lag: lag, counts: counts, tick: tick, logger: logger,
		changed: make(chan struct{}), done: make(chan struct{})}
	f.publish(f.compute(time.Now()))
	return f
}

// Run updates the state every tick until ctx ends; then every open page's
// stream ends, so the HTTP server can shut down. Until the first count of
// the table it looks every firstScanPoll whether the view has recovered,
// so that the page's numbers follow the recovery at once rather than at
// the next tick.
func (f *Feed) Run(ctx context.Context) error {
	defer close(f.done)
	t := time.NewTicker(f.tick)
	defer t.Stop()
	poll := time.NewTicker(min(f.tick, firstScanPoll))
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			f.maybeScan(now)
			f.publish(f.compute(now))
		case now := <-poll.C:
			if f.summary.counted.Load() {
				poll.Stop()
				continue
			}
			if f.maybeScan(now) {
				f.publish(f.compute(now))
			}
		}
	}
}

// firstScanPoll is how often the feed looks whether the view has
// recovered, until it has counted the table once.
const firstScanPoll = 10 * time.Millisecond

// maybeScan counts the whole table once the view has recovered, and again
// (at most every 10 s) when the top list went stale. It tells whether it
// counted.
func (f *Feed) maybeScan(now time.Time) bool {
	snap := f.summary.Snapshot()
	due := !snap.Tracking || (snap.Stale && now.Sub(f.lastScan) > 10*time.Second)
	if !due || !f.table.Recovered() {
		return false
	}
	f.lastScan = now
	start := time.Now()
	if err := f.summary.Scan(f.table); err != nil {
		f.logger.Error("count the table for the page", "err", err)
		return false
	}
	after := f.summary.Snapshot()
	f.logger.Info("counted the table for the page", "users", after.Users, "clicks", after.Total, "took", time.Since(start).Round(time.Millisecond))
	return true
}

func (f *Feed) compute(now time.Time) *pageState {
	snap := f.summary.Snapshot()
	st := &pageState{Known: snap.Tracking, Total: snap.Total, Users: snap.Users, Top: snap.Top, Connected: true, Ready: true,
		Parts: make(map[string]partState, len(f.parts))}
	lag := status.Lag{View: -1, Processor: -1}
	if f.lag != nil {
		lag = f.lag()
		st.Connected = lag.Err == nil && !lag.At.IsZero()
	}
	for _, p := range f.parts {
		ok, state := p.Ready()
		ps := partState{State: state, Ready: ok, Lag: -1}
		switch p.Name {
		case "view":
			ps.Lag = lag.View
			st.CaughtUp = ok && lag.View == 0
		case "processor":
			ps.Lag = lag.Processor
		}
		st.Parts[p.Name] = ps
		st.Ready = st.Ready && ok
	}
	if f.counts != nil {
		st.Processor = f.counts()
	}
	if snap.Tracking {
		f.samples = append(f.samples, rateSample{now, snap.Total})
		for len(f.samples) > 1 && now.Sub(f.samples[1].at) >= rateWindow {
			f.samples = f.samples[1:]
		}
		if first := f.samples[0]; now.Sub(first.at) > 0 {
			r := float64(snap.Total-first.total) / now.Sub(first.at).Seconds()
			st.Rate = math.Round(max(r, 0)*10) / 10
		}
	}
	return st
}

// publish makes st the latest state if it differs from the one before.
func (f *Feed) publish(st *pageState) {
	data, err := json.Marshal(st)
	if err != nil {
		f.logger.Error("encode the page state", "err", err)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if bytes.Equal(data, f.encoded) {
		return
	}
	f.latest, f.encoded = st, data
	close(f.changed)
	f.changed = make(chan struct{})
}

// current returns the latest state and a channel closed when it is
// replaced. The state must not be changed.
func (f *Feed) current() (*pageState, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latest, f.changed
}

// encode returns st as JSON with at most n top users.
func (st *pageState) encode(n int) ([]byte, error) {
	c := *st
	c.Top = c.Top[:min(n, len(c.Top))]
	if c.Top == nil {
		c.Top = []RankedUser{}
	}
	return json.Marshal(c)
}

const defaultTop = 20

// topParam reads ?top=N, 1 to maxTop.
func topParam(r *http.Request) (int, error) {
	s := r.URL.Query().Get("top")
	if s == "" {
		return defaultTop, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxTop {
		return 0, fmt.Errorf("top must be a number from 1 to %d", maxTop)
	}
	return n, nil
}

// summaryHandler answers GET /-/summary?top=20 with the page's state once.
func summaryHandler(f *Feed) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := topParam(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		st, _ := f.current()
		data, err := st.encode(n)
		if err != nil {
			f.logger.Error("encode the page state", "err", err)
			writeError(w, http.StatusInternalServerError, "cannot encode the answer")
			return
		}
		writeBody(w, http.StatusOK, data)
	})
}

// heartbeat is how often a quiet stream sends a comment, so proxies and
// the browser see a live connection.
const heartbeat = 15 * time.Second

// eventsHandler streams the page's state as server-sent events
// (GET /-/events?top=20): the state at once, then every change, until
// the page goes away or the program stops.
func eventsHandler(f *Feed) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := topParam(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Accel-Buffering", "no") // tell a proxy in front not to buffer the stream
		if r.Method == http.MethodHead {
			return
		}
		rc := http.NewResponseController(w)
		beat := time.NewTicker(heartbeat)
		defer beat.Stop()
		// send writes one event (or comment); the server's write timeout
		// is moved along with each, as the stream has no end.
		send := func(format string, args ...any) bool {
			if rc.SetWriteDeadline(time.Now().Add(10*time.Second)) != nil {
				return false
			}
			if _, err := fmt.Fprintf(w, format, args...); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		if !send("retry: 2000\n\n") {
			return
		}
		for {
			st, changed := f.current()
			data, err := st.encode(n)
			if err != nil {
				f.logger.Error("encode the page state", "err", err)
				return
			}
			if !send("data: %s\n\n", data) {
				return
			}
		wait:
			select {
			case <-changed:
			case <-beat.C:
				if !send(": still here\n\n") {
					return
				}
				goto wait
			case <-f.done:
				return
			case <-r.Context().Done():
				return
			}
		}
	})
}
