// Package clicks is the goka "2-clicks" example itself: the user value and
// its codec (codec.go), the process callbacks that count clicks exactly
// once (processor.go, route.go), the emitter that simulates the users
// (emitter.go) and the view the counts are served from (view.go). A reader
// of the goka example finds its parts here; start at Counter.click. Beside
// them, each for one reason: userjson.go writes and reads the JSON by hand
// (speed), recent.go keeps the users last written decoded (speed),
// stored.go is what the start-up repair reads of stored values. How the
// parts are wired, served and run is the rest of internal/.
package clicks

import "github.com/lovoo/goka"

// The names from the original example.
const (
	Topic             goka.Stream = "user-clicks"
	Group             goka.Group  = "mini-group"
	Table                         = goka.Table(string(Group) + "-table") // what goka.GroupTable(Group) names
	Loop                          = goka.Stream(string(Group) + "-loop") // the group's loop topic, as goka.Loop names it
	DefaultPartitions             = 10                                   // as in the seed's "Table mini-group-table has 10 partitions"
)

// The reasons why the processor does not count a click.
const (
	SkipDuplicate         = "duplicate"          // delivered again, counted already
	SkipNoKey             = "no_key"             // a null or empty key: no user
	SkipUnreadableValue   = "unreadable_value"   // the user's table value cannot be read
	SkipUnreadableForward = "unreadable_forward" // a record in the loop topic that clicks did not write
	SkipFiller            = "filler"             // written by clicks to fill offsets a damaged log lost (package filler)
	SkipStaleForward      = "stale_forward"      // a forward of an earlier incarnation of the click topic
)

// SkipReasons lists every reason, for metrics that show them all from the
// start.
func SkipReasons() []string {
	return []string{SkipDuplicate, SkipNoKey, SkipUnreadableValue, SkipUnreadableForward, SkipFiller, SkipStaleForward}
}

// Events is told what the emitter and the processor do; the program's
// metrics implement it.
type Events interface {
	Emitted(err error)     // a click sent, or not (err)
	Counted()              // a click counted
	Forwarded()            // a click forwarded to its user's partition
	Skipped(reason string) // a click not counted, for one of the Skip reasons
}

// NoEvents ignores all events.
type NoEvents struct{}

func (NoEvents) Emitted(error)  {}
func (NoEvents) Counted()       {}
func (NoEvents) Forwarded()     {}
func (NoEvents) Skipped(string) {}
