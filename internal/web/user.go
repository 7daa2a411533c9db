package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"clicks/internal/clicks"

	"github.com/gorilla/mux"
)

// maxKeyBytes bounds the keys the view is asked for; longer ones are
// refused before they reach the view.
const maxKeyBytes = 256

// viewHandler answers GET /{key} with the user's count, {"Clicks":N}.
func viewHandler(v Reader, logger *slog.Logger) http.Handler {
	user := userHandler(v, logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user(w, r, mux.Vars(r)["key"])
	})
}

// userHandler answers the count of key, {"Clicks":N}.
func userHandler(v Reader, logger *slog.Logger) func(http.ResponseWriter, *http.Request, string) {
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
		u, ok := val.(*clicks.User)
		if !ok {
			logger.Error("read view", "key", key, "err", fmt.Errorf("value is %T, want *clicks.User", val))
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
