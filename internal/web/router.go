package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"clicks/internal/metrics"

	"github.com/gorilla/mux"
)

// Reader is what the user route needs of the view.
type Reader interface {
	Get(key string) (any, error)
	Recovered() bool
}

// Routes adds the routes of one thing an instance has (see ops.go) to the
// router: to root, or to ops, which serves GET and HEAD under /-/.
type Routes func(root, ops *mux.Router, logger *slog.Logger)

// NewRouter registers every route in one place. A single path segment is
// a user key, as in the original: GET /user-3, answered from v;
// operational endpoints are under /-/: /-/healthy always, /-/metrics and
// request metrics with m (nil: none), and what routes add.
//
// The most frequent request, GET /{key}, is answered without mux's
// matching (see userRouter); everything else goes to mux.
func NewRouter(v Reader, m *metrics.Metrics, logger *slog.Logger, routes ...Routes) http.Handler {
	user := userHandler(v, logger)
	var fast http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user(w, r, r.URL.Path[1:])
	})
	if m != nil {
		fast = m.InstrumentAs("/{key}", fast)
	}
	return &userRouter{user: fast, mux: newMuxRouter(v, m, logger, routes...)}
}

// userRouter sends GET and HEAD of exactly the paths mux would route to
// /{key} straight to the view's handler, and every other request to mux.
// mux matches a regular expression and wraps the request twice in a new
// context for every request; for the answer asked for most that was a
// few per cent of the reads a second. FuzzUserRouter checks that both
// answer every request alike.
type userRouter struct {
	user, mux http.Handler
}

func (u *userRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && isUserPath(r.URL.Path) {
		u.user.ServeHTTP(w, r)
		return
	}
	u.mux.ServeHTTP(w, r)
}

// isUserPath tells whether mux routes p to /{key}: one segment, and
// nothing its path cleaning would change (it redirects "/." and "/..").
func isUserPath(p string) bool {
	if len(p) < 2 || p[0] != '/' {
		return false
	}
	k := p[1:]
	return k != "." && k != ".." && !strings.Contains(k, "/")
}

// newMuxRouter is the router with every route, gorilla/mux's.
func newMuxRouter(v Reader, m *metrics.Metrics, logger *slog.Logger, routes ...Routes) http.Handler {
	r := mux.NewRouter()
	// The user route first: mux tries routes in order, and a user's count
	// is what is asked for most. No operational route has a single
	// segment, so none is hidden by it.
	r.Handle("/{key}", viewHandler(v, logger)).Methods(http.MethodGet, http.MethodHead)
	// Paths below are under /-. Every one answers GET and HEAD only; the
	// methods are checked after the path matched, so that another method
	// gets 405, not 404.
	ops := r.PathPrefix("/-").Subrouter()
	ops.Use(getOnly)
	ops.HandleFunc("/healthy", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	if m != nil {
		ops.Handle("/metrics", m.Handler())
	}
	for _, add := range routes {
		add(r, ops, logger)
	}
	var notFound, notAllowed http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found: ask for one user, as in GET /user-3")
	}), http.HandlerFunc(methodNotAllowed)
	if m != nil {
		r.Use(m.Instrument)
		notFound = m.InstrumentAs("unmatched", notFound)
		notAllowed = m.InstrumentAs("unmatched", notAllowed)
	}
	r.NotFoundHandler, r.MethodNotAllowedHandler = notFound, notAllowed
	return r
}

// methodNotAllowed answers a method other than GET and HEAD.
func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use GET", r.Method))
}

// getOnly lets GET and HEAD through to next and answers any other method
// with 405.
func getOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
