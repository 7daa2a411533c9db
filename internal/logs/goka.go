package logs

import (
	"fmt"
	"log/slog"
	"strings"
)

// Goka lets goka (and its web pages) log through slog: goka.Logger is
// Print, Println and Printf.
type Goka struct{ L *slog.Logger }

func (g Goka) Print(v ...any)   { g.L.Info(strings.TrimSpace(fmt.Sprint(v...))) }
func (g Goka) Println(v ...any) { g.L.Info(strings.TrimSpace(fmt.Sprintln(v...))) }
func (g Goka) Printf(format string, v ...any) {
	g.L.Info(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
