package web

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
)

// exportChunk is how many users the export reads from the view at a
// time: it holds the view for one chunk's read, then releases it before
// it writes them, so the server holds at most one chunk whatever the
// table's size, and a stop or rebalance waits for one chunk at most.
const exportChunk = 1000

// exportTrailer is the HTTP trailer that ends every export: "complete;
// users=N", or "incomplete; users=N" where it could not read the table to
// its end. The NDJSON export also ends with it as a last line.
const exportTrailer = "Clicks-Export"

// Export serves GET /-/export: every user and count, streamed in key
// order, as NDJSON ({"user":"user-0","clicks":5} a line, then
// {"complete":true,"users":N}) or with ?format=csv as CSV (user,clicks);
// ?prefix= narrows it as the listing's does.
func Export(l Lister) Routes {
	return func(_, ops *mux.Router, logger *slog.Logger) {
		ops.Handle("/export", exportHandler(l, logger))
	}
}

func exportHandler(l Lister, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		prefix, format := q.Get("prefix"), q.Get("format")
		if len(prefix) > maxKeyBytes {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("prefix has at most %d bytes", maxKeyBytes))
			return
		}
		var enc exportEncoder
		switch format {
		case "", "ndjson":
			w.Header().Set("Content-Type", "application/x-ndjson")
			enc = ndjsonEncoder{}
		case "csv":
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			enc = &csvEncoder{}
		default:
			writeError(w, http.StatusBadRequest, "format is ndjson (the default) or csv")
			return
		}
		w.Header().Set("Trailer", exportTrailer)
		w.Header().Set("Cache-Control", "no-store")
		rc := http.NewResponseController(w)
		var buf bytes.Buffer
		enc.header(&buf)
		n, after, complete := 0, "", false
		for r.Context().Err() == nil {
			users, more, err := listUsers(l, prefix, after, exportChunk, logger)
			if err != nil {
				logger.Error("export clicks: the table could not be read to its end", "users_written", n, "err", err)
				break
			}
			for _, u := range users {
				enc.user(&buf, u)
			}
			n += len(users)
			if !more {
				complete = true
				break
			}
			after = users[len(users)-1].User
			// The server's write timeout is moved along with each chunk:
			// a client that reads keeps the export going; one that stalls
			// longer than this is cut off.
			if !writeChunk(w, rc, &buf) {
				return // the client is gone: nothing more to say
			}
		}
		state := "complete"
		if !complete {
			state = "incomplete"
		}
		enc.end(&buf, complete, n)
		w.Header().Set(exportTrailer, fmt.Sprintf("%s; users=%d", state, n))
		writeChunk(w, rc, &buf)
	})
}

// writeChunk writes what buf holds and flushes it, within a fresh write
// deadline, and empties buf. It returns false if the client is gone.
func writeChunk(w http.ResponseWriter, rc *http.ResponseController, buf *bytes.Buffer) bool {
	if err := rc.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return false
	}
	_, err := w.Write(buf.Bytes())
	buf.Reset()
	if err != nil {
		return false
	}
	err = rc.Flush()
	return err == nil || errors.Is(err, http.ErrNotSupported)
}

// exportEncoder writes the lines of one format.
type exportEncoder interface {
	header(*bytes.Buffer)
	user(*bytes.Buffer, RankedUser)
	end(buf *bytes.Buffer, complete bool, users int)
}

type ndjsonEncoder struct{}

func (ndjsonEncoder) header(*bytes.Buffer) {}

func (ndjsonEncoder) user(buf *bytes.Buffer, u RankedUser) {
	key, _ := json.Marshal(u.User) // a string always encodes
	buf.WriteString(`{"user":`)
	buf.Write(key)
	buf.WriteString(`,"clicks":`)
	buf.WriteString(strconv.FormatInt(u.Clicks, 10))
	buf.WriteString("}\n")
}

func (ndjsonEncoder) end(buf *bytes.Buffer, complete bool, users int) {
	fmt.Fprintf(buf, `{"complete":%t,"users":%d}`+"\n", complete, users)
}

type csvEncoder struct{ w *csv.Writer }

func (c *csvEncoder) header(buf *bytes.Buffer) {
	c.w = csv.NewWriter(buf)
	c.line("user", "clicks")
}

func (c *csvEncoder) user(_ *bytes.Buffer, u RankedUser) {
	c.line(u.User, strconv.FormatInt(u.Clicks, 10))
}

// end writes nothing: a CSV has no place for it; the trailer says it.
func (c *csvEncoder) end(*bytes.Buffer, bool, int) {}

func (c *csvEncoder) line(fields ...string) {
	_ = c.w.Write(fields) // into a bytes.Buffer: cannot fail
	c.w.Flush()
}
