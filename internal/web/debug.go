package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// DebugHandler serves Go's profiles (net/http/pprof) under
// /-/debug/pprof/: CPU (?seconds=N), heap, allocations, goroutines,
// blocking, mutexes and the execution trace, for `go tool pprof`. pprof's
// Index serves the named profiles only under /debug/pprof/, so the "/-"
// is stripped before it: under its own path it answered every name
// with the index page.
func DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.StripPrefix("/-", mux)
}

// ServeDebug serves DebugHandler on ln until ctx ends. It is a server of
// its own, apart from the view's, because a profile takes as long as it
// is asked to (the view's server cuts an answer off after 10 s), and so
// that it listens only where it is asked to: loopback by default.
func ServeDebug(ctx context.Context, ln net.Listener, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           DebugHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("profiles served", "url", fmt.Sprintf("http://%s/-/debug/pprof/", ln.Addr()))
	select {
	case err := <-errc:
		return fmt.Errorf("serve profiles: %w", err)
	case <-ctx.Done():
	}
	// A profile being taken is cut short: stopping must not wait for it.
	if err := srv.Close(); err != nil {
		return fmt.Errorf("close the profiles' server: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve profiles: %w", err)
	}
	return nil
}
