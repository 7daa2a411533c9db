package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/lovoo/goka"
)

// newClickView builds the view on the group table: a local, always
// complete copy of all partitions, kept in dir.
// Every update of the table passes through update, which stores it (the
// program's is the page summary's; see tableSummary.update).
func newClickView(k *kafka, dir string, update goka.UpdateCallback) (*goka.View, error) {
	v, err := goka.NewView(k.brokers, goka.GroupTable(group), new(userCodec),
		goka.WithViewCallback(update),
		goka.WithViewStorageBuilder(cacheBuilder(dir)),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(k.config())),
		goka.WithViewTopicManagerBuilder(k.topicManagerBuilder()),
		goka.WithViewLogger(gokaLogger{k.logger.With("part", "view")}),
	)
	if err != nil {
		return nil, fmt.Errorf("create view of %s: %w", table, err)
	}
	return v, nil
}

// clickReader is what the HTTP handlers need of a goka view.
type clickReader interface {
	Get(key string) (any, error)
	Recovered() bool
}

// newRouter registers every route in one place. A single path segment is
// a user key, as in the original: GET /user-3; operational endpoints are
// under /-/ (see ops.go); o may be nil.
//
// The most frequent request, GET /{key}, is answered without mux's
// matching (see userRouter); everything else goes to mux.
func newRouter(v clickReader, o *ops, logger *slog.Logger) http.Handler {
	user := userHandler(v, logger)
	var fast http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user(w, r, r.URL.Path[1:])
	})
	if o != nil && o.metrics != nil {
		fast = o.metrics.instrumentAs("/{key}", fast)
	}
	return &userRouter{user: fast, mux: newMuxRouter(v, o, logger)}
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
func newMuxRouter(v clickReader, o *ops, logger *slog.Logger) http.Handler {
	r := mux.NewRouter()
	// The user route first: mux tries routes in order, and a user's count
	// is what is asked for most. No operational route has a single
	// segment, so none is hidden by it.
	r.Handle("/{key}", viewHandler(v, logger)).Methods(http.MethodGet, http.MethodHead)
	if o != nil {
		addOps(r, o, logger)
	}
	var notFound, notAllowed http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found: ask for one user, as in GET /user-3")
	}), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use GET", r.Method))
	})
	if o != nil && o.metrics != nil {
		r.Use(o.metrics.instrument)
		notFound = o.metrics.instrumentAs("unmatched", notFound)
		notAllowed = o.metrics.instrumentAs("unmatched", notAllowed)
	}
	r.NotFoundHandler, r.MethodNotAllowedHandler = notFound, notAllowed
	return r
}

// maxKeyBytes bounds the keys the view is asked for; longer ones are
// refused before they reach the view.
const maxKeyBytes = 256

// viewHandler answers GET /{key} with the user's count, {"Clicks":N}.
func viewHandler(v clickReader, logger *slog.Logger) http.Handler {
	user := userHandler(v, logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user(w, r, mux.Vars(r)["key"])
	})
}

// userHandler answers the count of key, {"Clicks":N}.
func userHandler(v clickReader, logger *slog.Logger) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, key string) {
		if len(key) > maxKeyBytes {
			writeError(w, http.StatusRequestURITooLong, fmt.Sprintf("a user key has at most %d bytes", maxKeyBytes))
			return
		}
		if !v.Recovered() {
			// Until the view has read the whole table, a count would be
			// too low or missing.
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "the view is still loading the table; try again shortly")
			return
		}
		val, err := v.Get(key)
		if err != nil {
			logger.Error("read view", "key", key, "err", err)
			writeError(w, http.StatusInternalServerError, "cannot read the clicks of this user; see the server log")
			return
		}
		if val == nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no clicks for user %q", key))
			return
		}
		u, ok := val.(*user)
		if !ok {
			logger.Error("read view", "key", key, "err", fmt.Errorf("value is %T, want *main.user", val))
			writeError(w, http.StatusInternalServerError, "cannot read the clicks of this user; see the server log")
			return
		}
		// Only the count, as the original answers: {"Clicks":153}, written
		// without reflection, as this is the answer asked for most.
		var buf [32]byte
		b := append(append(buf[:0], `{"Clicks":`...), strconv.Itoa(u.Clicks)...)
		writeBody(w, http.StatusOK, append(b, '}'))
	}
}

// writeJSON is the one place that writes a JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(`{"error":"cannot encode the answer"}`)
	}
	writeBody(w, status, data)
}

// The headers of every JSON answer, shared (never changed) so that
// setting them allocates nothing.
var (
	jsonContentType = []string{"application/json"}
	noSniff         = []string{"nosniff"}
)

// writeBody writes data, which is JSON, with status.
func writeBody(w http.ResponseWriter, status int, data []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	// A failed write means the client went away; there is no one left to
	// tell.
	w.Write(data) //nolint:errcheck
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

// newHTTPServer sets the limits that keep slow or greedy clients from
// tying up the server: a client that sends its headers slowly (slowloris)
// is cut off after ReadHeaderTimeout.
func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// serveHTTP serves h on ln until ctx ends, then shuts the server down,
// giving open requests a few seconds to finish.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, stdout io.Writer, logger *slog.Logger) error {
	srv := newHTTPServer(h, logger)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "View opened at http://%s/\n", displayAddr(ln.Addr()))
	if f, ok := stdout.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			logger.Warn("write to stdout", "err", err)
		}
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down HTTP server: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP: %w", err)
	}
	return nil
}

// displayAddr turns a listener address into one to open in a browser:
// localhost for a wildcard or loopback host, as the original prints.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && (ip.IsUnspecified() || ip.IsLoopback()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// safeView is the view as the rest of the program reads it, guarded
// against goka's View.close: when Run ends, goka (v1.1.17) drops the
// view's partitions without a lock, and a read at that moment raced with
// it (the race detector found it, with the live page asking every 250
// ms). Reads hold the read lock and find the view closed once Run has
// begun to stop it; Run takes the write lock before it lets goka close
// the view, so no read is under way then. A view that fails by itself
// closes within goka's Run before Run here returns: reads in that moment
// are not covered, and the program is stopping then.
type safeView struct {
	v *goka.View

	mu     sync.RWMutex
	closed bool
}

func newSafeView(v *goka.View) *safeView { return &safeView{v: v} }

// errViewStopped answers reads after the view has stopped.
var errViewStopped = errors.New("the view has stopped")

// Run runs the view until ctx ends or the view fails.
func (s *safeView) Run(ctx context.Context) error {
	vctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.v.Run(vctx) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if err != nil {
		return err
	}
	cancel()
	return <-done
}

// read runs f with the view unless it has stopped.
func (s *safeView) read(f func(*goka.View)) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false
	}
	f(s.v)
	return true
}

func (s *safeView) Get(key string) (val any, err error) {
	if !s.read(func(v *goka.View) { val, err = v.Get(key) }) {
		return nil, errViewStopped
	}
	return val, err
}

func (s *safeView) Recovered() (ok bool) {
	s.read(func(v *goka.View) { ok = v.Recovered() })
	return ok
}

func (s *safeView) CurrentState() goka.ViewState {
	state := goka.ViewStateIdle
	s.read(func(v *goka.View) { state = v.CurrentState() })
	return state
}

func (s *safeView) Stats(ctx context.Context) *goka.ViewStats {
	stats := &goka.ViewStats{Partitions: map[int32]*goka.TableStats{}}
	s.read(func(v *goka.View) { stats = v.Stats(ctx) })
	return stats
}

// Iterator and IteratorWithRange return iterators that hold the read
// lock until they are released: LevelDB must not be closed while an
// iterator is open. Release them promptly (the stop waits for them), and
// do not read the view otherwise while one is open.
func (s *safeView) Iterator() (goka.Iterator, error) {
	return s.iterator(func(v *goka.View) (goka.Iterator, error) { return v.Iterator() })
}

func (s *safeView) IteratorWithRange(start, limit string) (goka.Iterator, error) {
	return s.iterator(func(v *goka.View) (goka.Iterator, error) { return v.IteratorWithRange(start, limit) })
}

func (s *safeView) iterator(open func(*goka.View) (goka.Iterator, error)) (goka.Iterator, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, errViewStopped
	}
	it, err := open(s.v)
	if err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	return &lockedIterator{Iterator: it, unlock: s.mu.RUnlock}, nil
}

// lockedIterator releases the view's read lock with the iterator.
type lockedIterator struct {
	goka.Iterator
	unlock func()
	once   sync.Once
}

func (l *lockedIterator) Release() {
	l.Iterator.Release()
	l.once.Do(l.unlock)
}
