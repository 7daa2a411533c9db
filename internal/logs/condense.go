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
// error list and the distinct causes, at most maxCauses of them, those
// that are more than "an earlier write failed" first; and how many causes
// the tree held. Text without such a tree is returned as it is, with 0.
func Condense(text string) (short string, causes int) {
	lines := strings.Split(text, "\n")
	head := strings.TrimSpace(lines[0])
	if !occurred.MatchString(head) {
		return text, 0
	}
	head = strings.TrimSpace(occurred.ReplaceAllString(head, ""))
	var roots, earlier []string
	for _, l := range lines[1:] {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "* "))
		if l == "" || occurred.MatchString(l) {
			continue
		}
		causes++
		if strings.HasPrefix(l, "an earlier write failed") {
			earlier = appendNew(earlier, l)
		} else {
			roots = appendNew(roots, l)
		}
	}
	distinct := append(roots, earlier...)
	if len(distinct) > maxCauses {
		distinct = distinct[:maxCauses]
	}
	switch {
	case len(distinct) == 0:
		return strings.TrimSuffix(head, ":"), causes
	case head == "":
		return strings.Join(distinct, "; "), causes
	}
	return head + " " + strings.Join(distinct, "; "), causes
}

// maxCauses is how many distinct causes Condense keeps.
const maxCauses = 3

// appendNew appends s to list unless it is there.
func appendNew(list []string, s string) []string {
	for _, l := range list {
		if l == s {
			return list
		}
	}
	return append(list, s)
}
