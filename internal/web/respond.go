package web

import (
	"encoding/json"
	"net/http"
)

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
