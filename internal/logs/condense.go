package logs

import (
	"regexp"
	"strings"
)

// occurred ends the header hashicorp/go-multierror writes above the
// errors it holds ("3 errors occurred:"); goka nests them, one per
// partition and per click, with the same cause in each.
var occurred = regexp.MustCompile(`\d+ errors? occurred:$`)

// Condense shortens what goka writes for a failed processor or view: a
// tree of multi-errors, one branch per partition and per message, which
// with the disk full or the broker gone says the same cause dozens of
// times over kilobytes. It returns the first line's text before its
// error list and the first cause (one that is not only "an earlier write
// failed"), and how many causes the tree held. Text without such a tree
// is returned as it is, with 0.
func Condense(text string) (short string, causes int) {
	lines := strings.Split(text, "\n")
	head := strings.TrimSpace(lines[0])
	if !occurred.MatchString(head) {
		return text, 0
	}
	head = strings.TrimSpace(occurred.ReplaceAllString(head, ""))
	var first, firstRoot string
	for _, l := range lines[1:] {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "* "))
		if l == "" || occurred.MatchString(l) {
			continue
		}
		causes++
		if first == "" {
			first = l
		}
		if firstRoot == "" && !strings.HasPrefix(l, "an earlier write failed") {
			firstRoot = l
		}
	}
	if firstRoot == "" {
		firstRoot = first
	}
	switch {
	case firstRoot == "":
		return strings.TrimSuffix(head, ":"), causes
	case head == "":
		return firstRoot, causes
	}
	return head + " " + firstRoot, causes
}
