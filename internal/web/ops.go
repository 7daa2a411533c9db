package web

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"clicks/internal/clicks"
	"clicks/internal/logs"
	"clicks/internal/status"

	"github.com/gorilla/mux"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/web/monitor"
	"github.com/lovoo/goka/web/query"
)

// Everything operational lives under /-/, so that every single-segment
// path stays a user key as in the original: GET /metrics is the clicks of
// a user named "metrics". Each of these adds the routes of one thing an
// instance may have, and takes what its handlers need.

// Ready serves GET /-/ready: whether every part is ready.
func Ready(parts []status.Part) Routes {
	return func(_, ops *mux.Router, _ *slog.Logger) {
		ops.Handle("/ready", readyHandler(parts))
	}
}

// Lister is what the listing needs of the view.
type Lister interface {
	IteratorWithRange(start, limit string) (goka.Iterator, error)
}

// List serves GET /-/clicks: the users whose key starts with a prefix.
func List(l Lister) Routes {
	return func(_, ops *mux.Router, logger *slog.Logger) {
		ops.Handle("/clicks", listHandler(l, logger))
	}
}

// Page serves the live page at GET /, its assets, and its state at
// /-/summary (once) and /-/events (as it changes).
func Page(f *Feed) Routes {
	return func(root, ops *mux.Router, _ *slog.Logger) {
		page, assets := pageHandler()
		root.Handle("/", page).Methods(http.MethodGet, http.MethodHead)
		ops.PathPrefix("/assets/").Handler(assets)
		ops.Handle("/summary", summaryHandler(f))
		ops.Handle("/events", eventsHandler(f))
	}
}

// GokaPages mounts goka's own monitoring page (/-/monitor/) and query
// page (/-/query/), with this instance's processor and view (either may be
// nil) attached. They are goka's pages as goka ships them: unlike the
// live page, they load their styles and scripts from public CDNs.
func GokaPages(view *clicks.View, proc *goka.Processor) Routes {
	return func(root, _ *mux.Router, logger *slog.Logger) {
		if view == nil && proc == nil {
			return
		}
		gl := logs.Goka{L: logger.With("part", "web")}
		// goka registers its pages for every method: here they answer
		// GET and HEAD only, as the rest does.
		pages := root.NewRoute().Subrouter()
		pages.Use(getOnly)
		mon := monitor.NewServer("/-/monitor", pages, monitor.WithLogger(gl))
		if proc != nil {
			mon.AttachProcessor(proc)
		}
		if view != nil {
			// goka's monitor reads the view itself, unguarded; a request to
			// it while clicks stops may meet the race clicks.View closes.
			mon.AttachView(view.Goka())
			q := query.NewServer("/-/query", pages, query.WithLogger(gl))
			if err := q.AttachSource(string(clicks.Table), view.Get); err != nil {
				logger.Error("attach the view to goka's query page", "err", err)
			}
		}
		for _, base := range []string{"/-/monitor", "/-/query"} {
			root.Handle(base, http.RedirectHandler(base+"/", http.StatusMovedPermanently))
		}
	}
}

// readyHandler answers 200 when every part is ready and 503 until then,
// with what each part is doing and, while not ready, how much of its
// table each has recovered (0 to 1).
func readyHandler(parts []status.Part) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		all := true
		states := make(map[string]string, len(parts))
		progress := make(map[string]float64, len(parts))
		for _, p := range parts {
			ok, state := p.Ready()
			all = all && ok
			states[p.Name] = state
			if p.Progress != nil {
				progress[p.Name] = math.Floor(p.Progress()*1000) / 1000
			}
		}
		code := http.StatusOK
		if all {
			progress = nil
		} else {
			code = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		writeJSON(w, code, struct {
			Ready    bool               `json:"ready"`
			Parts    map[string]string  `json:"parts"`
			Progress map[string]float64 `json:"progress,omitempty"`
		}{all, states, progress})
	})
}

const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// listHandler answers GET /-/clicks?prefix=user-&after=user-1&limit=100
// with the users whose key starts with prefix and comes after after, in
// key order, at most limit of them:
// {"users":[{"user":"user-2","clicks":5},...],"more":true,"next":"user-7"}.
// A client pages through every user by passing next as after until more
// is false: keys only ever come after the cursor, so no user present
// throughout is missed or repeated, whatever the counts do meanwhile. It
// reads from the view's iterator, at most maxListLimit, and releases the
// iterator before it writes, so a slow client does not hold the view.
func listHandler(l Lister, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		prefix, after := q.Get("prefix"), q.Get("after")
		limit := defaultListLimit
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > maxListLimit {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a number from 1 to %d", maxListLimit))
				return
			}
			limit = n
		}
		if len(prefix) > maxKeyBytes {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("prefix has at most %d bytes", maxKeyBytes))
			return
		}
		if len(after) > maxKeyBytes {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("after is a user key, at most %d bytes", maxKeyBytes))
			return
		}
		users, more, err := listUsers(l, prefix, after, limit, logger)
		if err != nil {
			logger.Error("list clicks", "err", err)
			writeError(w, http.StatusInternalServerError, "cannot list the clicks; see the server log")
			return
		}
		page := struct {
			Users []RankedUser `json:"users"`
			More  bool         `json:"more"`
			Next  string       `json:"next,omitempty"`
		}{Users: users, More: more}
		if more {
			page.Next = users[len(users)-1].User
		}
		writeJSON(w, http.StatusOK, page)
	})
}

// listUsers reads at most limit users whose key starts with prefix and
// comes after after (if not empty), in key order, and whether there are
// more. One unreadable value does not hide the others: it is logged and
// left out.
func listUsers(l Lister, prefix, after string, limit int, logger *slog.Logger) (users []RankedUser, more bool, err error) {
	it, err := l.IteratorWithRange(prefix, "")
	if err != nil {
		return nil, false, err
	}
	defer it.Release()
	if after != "" {
		// The first key after after is the first at or above after+"\x00".
		if !it.Seek(after + "\x00") {
			return []RankedUser{}, false, it.Err()
		}
	}
	users = make([]RankedUser, 0, min(limit, 64))
	for it.Next() {
		if len(users) == limit {
			return users, true, nil
		}
		v, err := it.Value()
		u, ok := v.(*clicks.User)
		if err != nil || !ok {
			logger.Error("list clicks", "key", it.Key(), "err", err, "type", fmt.Sprintf("%T", v))
			continue
		}
		users = append(users, RankedUser{it.Key(), int64(u.Clicks)})
	}
	return users, false, it.Err()
}
