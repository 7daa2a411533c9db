package repair_test

import (
	"regexp"
	"strings"
	"testing"
)

// What the start-up repair says, as the tests look for it: each message
// once here, the beginning of its text as the program logs it, so that
// rewording one changes one place.
const (
	lostEndMsg         = "the broker's log ends before what the processor had read or counted"
	filledMsg          = "filled the offsets the log lost"
	emptiedMsg         = "the embedded broker reloaded a partition that retention had emptied"
	holeMsg            = "the broker's log lacks records in its middle"
	lostForwardsMsg    = "clicks forwarded through the loop topic were lost before they were counted"
	holedForwardsMsg   = "a hole in the loop topic lost forwards before they were counted"
	skippedForwardsMsg = "forwards waiting in a loop partition with a hole are skipped"
	changelogBehindMsg = "the table's changelog ends before what a local table had read" // written back, or NOT
	countAgainMsg      = "the table's changelog lost counts"
	groupWaitMsg       = "waiting for the processor group to empty"
	notReadAgainMsg    = "cannot make the processor group read those records again"
	cacheRebuiltMsg    = "local table cache was unreadable"
)

// lineRE returns the pattern of a line whose message begins with msg and
// goes on as rest says: the rest of the message, its closing quote and
// the fields a test looks for.
func lineRE(msg, rest string) *regexp.Regexp {
	return regexp.MustCompile(`msg="` + regexp.QuoteMeta(msg) + rest)
}

// errorLineRE is lineRE of a line logged as an error.
func errorLineRE(msg, rest string) *regexp.Regexp {
	return regexp.MustCompile(`level=ERROR msg="` + regexp.QuoteMeta(msg) + rest)
}

var (
	// lostLineRE matches the start-up line of a click or loop log that
	// lost records: its topic, partition and the records lost.
	lostLineRE = lineRE(lostEndMsg, `[^\n]* topic=(\S+) partition=(\d+) log_end=\d+ read_up_to=\d+ (?:counted_up_to=\d+ )?records_lost=(\d+)`)

	// writtenBackRE matches the start-up line of a table changelog that
	// lost records a local table held: its partition, the records lost
	// and the values written back.
	writtenBackRE = lineRE(changelogBehindMsg, `[^\n]* topic=\S+ partition=(\d+) [^\n]*records_lost=(\d+) values_written_back=(\d+)`)

	// notWrittenBackRE matches the error line of an instance that found
	// its local table ahead of a damaged changelog but must not write it
	// back: the partition, and why not.
	notWrittenBackRE = errorLineRE(changelogBehindMsg, `[^"]*NOT written back[^"]*" topic=\S+ partition=(\d+) [^\n]*why="([^"]*)"`)

	// lostForwardsRE matches the start-up line of a loop topic that lost
	// forwards before they were counted: its partition and how many.
	lostForwardsRE = lineRE(lostForwardsMsg, `[^\n]* topic=\S+ partition=(\d+) log_end=\d+ clicks_not_counted=(\d+)`)

	// countAgainRE matches the start-up line of a table changelog that
	// lost counts, which the processor then makes again: its partition.
	countAgainRE = lineRE(countAgainMsg, `[^\n]* topic=\S+ partition=(\d+)[^\n]*`)

	// holeRE matches the start-up line of a log that lacks records in its
	// middle: its topic, partition, first and last offset lost, and the
	// records lost.
	holeRE = lineRE(holeMsg, `[^"]*" topic=(\S+) partition=(\d+) offsets=(\d+)-(\d+) records_lost=(\d+)`)

	// holedForwardsRE matches the start-up line of a loop partition whose
	// hole lost forwards not counted yet: its partition and how many.
	holedForwardsRE = lineRE(holedForwardsMsg, `[^"]*" topic=\S+ partition=(\d+) clicks_not_counted=(\d+)`)
)

// lineOf returns the first line of log that has text in it, or "".
func lineOf(log, text string) string {
	i := strings.Index(log, text)
	if i < 0 {
		return ""
	}
	start := strings.LastIndexByte(log[:i], '\n') + 1
	end := strings.IndexByte(log[i:], '\n')
	if end < 0 {
		return log[start:]
	}
	return log[start : i+end]
}

// damageMsgs are what a start says of damage it found and mended, or
// could not mend.
var damageMsgs = []string{lostEndMsg, filledMsg, lostForwardsMsg, changelogBehindMsg, countAgainMsg, groupWaitMsg, notReadAgainMsg}

// checkNoDamageSaid checks that a start on healthy logs (what) said none
// of damageMsgs.
func checkNoDamageSaid(t *testing.T, log, what string) {
	t.Helper()
	for _, msg := range damageMsgs {
		if line := lineOf(log, msg); line != "" {
			t.Errorf("%s logged: %s", what, line)
		}
	}
}
