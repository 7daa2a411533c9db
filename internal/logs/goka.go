package logs

import (
	"fmt"
	"log/slog"
	"strings"
)

// Goka lets goka (and its web pages) log through slog: goka.Logger is
// Print, Println and Printf.
type Goka struct{ L *slog.Logger }

func (g Goka) Print(v ...any)   { g.info(fmt.Sprint(v...)) }
func (g Goka) Println(v ...any) { g.info(fmt.Sprintln(v...)) }
func (g Goka) Printf(format string, v ...any) {
	g.info(fmt.Sprintf(format, v...))
}

// info logs text, its trees of errors condensed to their first cause.
func (g Goka) info(text string) {
	short, causes := Condense(strings.TrimSpace(text))
	if causes > 1 {
		g.L.Info(short, "causes", causes)
		return
	}
	g.L.Info(short)
}
