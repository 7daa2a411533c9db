package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/web/monitor"
	"github.com/lovoo/goka/web/query"
)

// Everything operational lives under /-/, so that every single-segment
// path stays a user key as in the original: GET /metrics is the clicks of
// a user named "metrics".

// part is a component whose readiness /-/ready reports.
type part struct {
	name     string
	ready    func() (bool, string) // ready, and a word on what it is doing
	progress func() float64        // share of its table recovered, 0 to 1; nil if it has none
}

func viewPart(v *safeView) part {
	return part{"view", func() (bool, string) {
		return v.Recovered(), stateName(int(v.CurrentState()), "idle", "initializing", "connecting", "catching up", "running")
	}, func() float64 {
		return tableRecovery(v.Stats(context.Background()).Partitions).share()
	}}
}

func processorPart(p *goka.Processor) part {
	return part{"processor", func() (bool, string) {
		return p.Recovered(), stateName(int(p.StateReader().State()), "idle", "starting", "setting up", "running", "stopping", "stopped")
	}, func() float64 {
		return tableRecovery(processorTables(p)).share()
	}}
}

// stateName names goka's numbered states (goka.ViewState*, goka.ProcState*).
func stateName(s int, names ...string) string {
	if s < 0 || s >= len(names) {
		return fmt.Sprintf("state %d", s)
	}
	return names[s]
}

// clickLister is what the listing needs of a goka view.
type clickLister interface {
	IteratorWithRange(start, limit string) (goka.Iterator, error)
}

// ops holds what the operational endpoints report on. Every field may be
// left empty; its endpoints are then not served.
type ops struct {
	parts     []part
	list      clickLister     // the listing
	feed      *pageFeed       // the live page
	metrics   *clickMetrics   // /-/metrics and request metrics
	view      *safeView       // goka's monitor and query pages
	processor *goka.Processor // goka's monitor page
}

// addOps registers the operational endpoints on r.
func addOps(r *mux.Router, o *ops, logger *slog.Logger) {
	get := r.PathPrefix("/-").Methods(http.MethodGet, http.MethodHead).Subrouter() // paths below are under /-
	get.HandleFunc("/healthy", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	get.Handle("/ready", readyHandler(o.parts))
	if o.list != nil {
		get.Handle("/clicks", listHandler(o.list, logger))
	}
	if o.feed != nil {
		page, assets := pageHandler()
		r.Handle("/", page).Methods(http.MethodGet, http.MethodHead)
		get.PathPrefix("/assets/").Handler(assets)
		get.Handle("/summary", summaryHandler(o.feed))
		get.Handle("/events", eventsHandler(o.feed))
	}
	if o.metrics != nil {
		get.Handle("/metrics", o.metrics.handler())
	}
	addGokaPages(r, o, logger)
}

// addGokaPages mounts goka's own monitoring page (/-/monitor/) and query
// page (/-/query/), with this instance's processor and view attached.
// They are goka's pages as goka ships them: unlike the live page, they
// load their styles and scripts from public CDNs.
func addGokaPages(r *mux.Router, o *ops, logger *slog.Logger) {
	if o.view == nil && o.processor == nil {
		return
	}
	gl := gokaLogger{logger.With("part", "web")}
	mon := monitor.NewServer("/-/monitor", r, monitor.WithLogger(gl))
	if o.processor != nil {
		mon.AttachProcessor(o.processor)
	}
	if o.view != nil {
		// goka's monitor reads the view itself, unguarded; a request to
		// it while clicks stops may meet the race safeView closes.
		mon.AttachView(o.view.v)
		q := query.NewServer("/-/query", r, query.WithLogger(gl))
		if err := q.AttachSource(string(table), o.view.Get); err != nil {
			logger.Error("attach the view to goka's query page", "err", err)
		}
	}
	for _, base := range []string{"/-/monitor", "/-/query"} {
		r.Handle(base, http.RedirectHandler(base+"/", http.StatusMovedPermanently))
	}
}

// readyHandler answers 200 when every part is ready and 503 until then,
// with what each part is doing and, while not ready, how much of its
// table each has recovered (0 to 1).
func readyHandler(parts []part) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		all := true
		states := make(map[string]string, len(parts))
		progress := make(map[string]float64, len(parts))
		for _, p := range parts {
			ok, state := p.ready()
			all = all && ok
			states[p.name] = state
			if p.progress != nil {
				progress[p.name] = math.Floor(p.progress()*1000) / 1000
			}
		}
		status := http.StatusOK
		if all {
			progress = nil
		} else {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		writeJSON(w, status, struct {
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

// listHandler answers GET /-/clicks?prefix=user-&limit=100 with the users
// whose key starts with prefix, in key order, at most limit of them:
// {"users":[{"user":"user-0","clicks":5},...],"more":false}. It reads
// them from the view's iterator, at most maxListLimit, and releases the
// iterator before it writes, so a slow client does not hold the view.
func listHandler(l clickLister, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefix := r.URL.Query().Get("prefix")
		limit := defaultListLimit
		if s := r.URL.Query().Get("limit"); s != "" {
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
		users, more, err := listUsers(l, prefix, limit, logger)
		if err != nil {
			logger.Error("list clicks", "err", err)
			writeError(w, http.StatusInternalServerError, "cannot list the clicks; see the server log")
			return
		}
		writeJSON(w, http.StatusOK, struct {
			Users []rankedUser `json:"users"`
			More  bool         `json:"more"`
		}{users, more})
	})
}

// listUsers reads at most limit users whose key starts with prefix, in
// key order, and whether there are more. One unreadable value does not
// hide the others: it is logged and left out.
func listUsers(l clickLister, prefix string, limit int, logger *slog.Logger) (users []rankedUser, more bool, err error) {
	it, err := l.IteratorWithRange(prefix, "")
	if err != nil {
		return nil, false, err
	}
	defer it.Release()
	users = make([]rankedUser, 0, min(limit, 64))
	for it.Next() {
		if len(users) == limit {
			return users, true, nil
		}
		v, err := it.Value()
		u, ok := v.(*user)
		if err != nil || !ok {
			logger.Error("list clicks", "key", it.Key(), "err", err, "type", fmt.Sprintf("%T", v))
			continue
		}
		users = append(users, rankedUser{it.Key(), int64(u.Clicks)})
	}
	return users, false, it.Err()
}
