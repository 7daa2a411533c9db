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
func newRouter(v clickReader, o *ops, logger *slog.Logger) http.Handler {
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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := mux.Vars(r)["key"]
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
	})
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
