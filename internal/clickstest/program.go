package clickstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"clicks/internal/metrics/metricstest"
)

var (
	// BrokersRE matches the line in which the program says which brokers
	// it uses; its group is their addresses, comma-separated.
	BrokersRE = regexp.MustCompile(`msg="using (?:the embedded Kafka broker|Kafka brokers)" addrs=(\S+)`)

	// RepairedRE matches the line in which the start-up repair says it is
	// done, the last it logs; its group is how long it took.
	RepairedRE = regexp.MustCompile(`msg="checked the logs for damage" took=(\S+)`)

	// viewOpenedRE matches the line on stdout that says where the view
	// serves.
	viewOpenedRE = regexp.MustCompile(`View opened at (http://\S+)/`)
)

// Running is a running clicks, in the test's process (Instance) or in one
// of its own (Process): what the two share.
type Running interface {
	URL() string
	Log() string
	LastLines(n int) string
	Done() <-chan struct{}
	Err() error
	Get(path string) (status int, body string, err error)
	Clicks(key string) int
	Readiness() (int, map[string]string)
	WaitForBrokers() []string
	WaitForRepair() time.Duration
	WaitForLog(re *regexp.Regexp, within time.Duration) []string
	WaitForBody(path, want string, within time.Duration)
	WaitForClicks(key string, above int, within time.Duration) int
	WaitForSummary(within time.Duration, what string, done func(Summary) bool) Summary
	WaitForTotal(total int)
	WaitForReadiness(code int, within time.Duration) map[string]string
	WaitForMetric(within time.Duration, what string, done func(float64) bool, name string, labels ...string) float64
}

var (
	_ Running = (*Instance)(nil)
	_ Running = (*Process)(nil)
)

// program is what an Instance and a Process share: the log, the view's
// address once it has said it, and how it exited.
type program struct {
	t      testing.TB
	stderr *Buffer

	openOnce sync.Once
	opened   chan struct{} // closed once url is set
	url      string

	exited chan struct{} // closed once it has exited, and err is set
	err    error
}

func newProgram(t testing.TB) *program {
	return &program{t: t, stderr: NewBuffer(), opened: make(chan struct{}), exited: make(chan struct{})}
}

// open sets the view's address, once.
func (r *program) open(url string) {
	r.openOnce.Do(func() {
		r.url = url
		close(r.opened)
	})
}

// exit says that it has exited, with err.
func (r *program) exit(err error) {
	r.err = err
	close(r.exited)
}

// Log is what it has logged so far.
func (r *program) Log() string { return r.stderr.String() }

// LastLines returns the last n lines of its log.
func (r *program) LastLines(n int) string {
	var last string
	r.stderr.With(func(b *bytes.Buffer) error {
		last = LastLines(string(b.Bytes()), n)
		return nil
	})
	return last
}

// Done is closed once it has exited.
func (r *program) Done() <-chan struct{} { return r.exited }

// Err is how it exited (nil for a clean exit, or while it runs).
func (r *program) Err() error {
	select {
	case <-r.exited:
		return r.err
	default:
		return nil
	}
}

// running returns "" while it runs, and else how it exited.
func (r *program) running() string {
	select {
	case <-r.exited:
		return fmt.Sprintf("exited (%v)", r.err)
	default:
		return ""
	}
}

// URL waits, up to 30 s, until the view has said where it serves, and
// returns its base URL.
func (r *program) URL() string {
	r.t.Helper()
	WaitFor(r.t, 30*time.Second, "the view to open", func() (bool, string) {
		select {
		case <-r.opened:
			return true, ""
		default:
		}
		if exited := r.running(); exited != "" {
			r.t.Fatalf("%s before its view opened:\n%s", exited, r.LastLines(40))
		}
		return false, "no view opened:\n" + r.LastLines(40)
	})
	return r.url
}

// WaitForLog waits until a line of the log matches re and returns the
// match and its groups.
func (r *program) WaitForLog(re *regexp.Regexp, within time.Duration) []string {
	r.t.Helper()
	var m []string
	WaitFor(r.t, within, fmt.Sprintf("a line matching %s", re), func() (bool, string) {
		// What it logged before it exited is all in the log.
		exited := r.running()
		if m = re.FindStringSubmatch(r.Log()); m != nil {
			return true, ""
		}
		if exited != "" {
			r.t.Fatalf("%s with no line matching %s:\n%s", exited, re, r.LastLines(40))
		}
		return false, "\n" + r.LastLines(40)
	})
	return m
}

// WaitForBrokers waits, up to 30 s, until it has said which brokers it
// uses, and returns their addresses.
func (r *program) WaitForBrokers() []string {
	r.t.Helper()
	return strings.Split(r.WaitForLog(BrokersRE, 30*time.Second)[1], ",")
}

// WaitForRepair waits, up to 30 s, until the start-up repair has said it
// is done, and returns how long it took. What the repair logged is all in
// the log then; where the view runs, URL waits for the repair too (the
// view opens after it), but the lines it logged may still be on their way
// from the process.
func (r *program) WaitForRepair() time.Duration {
	r.t.Helper()
	m := r.WaitForLog(RepairedRE, 30*time.Second)
	took, err := time.ParseDuration(m[1])
	if err != nil {
		r.t.Fatalf("the repair's line %q: %v", m[0], err)
	}
	return took
}

// Get fetches path from the view and returns the status and body.
func (r *program) Get(path string) (int, string, error) {
	res, err := http.Get(r.URL() + path)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, string(body), err
}

// WaitForBody polls path until it answers 200 with want.
func (r *program) WaitForBody(path, want string, within time.Duration) {
	r.t.Helper()
	WaitFor(r.t, within, fmt.Sprintf("GET %s to answer 200 %q", path, want), func() (bool, string) {
		status, body, err := r.Get(path)
		if err == nil && status == 200 && body == want {
			return true, ""
		}
		return false, fmt.Sprintf("%d %q (err %v)\nstderr:\n%s", status, body, err, r.LastLines(40))
	})
}

// Clicks reads the count of key, or -1 if there is none yet.
func (r *program) Clicks(key string) int {
	r.t.Helper()
	status, body, err := r.Get("/" + key)
	if err != nil || status != 200 {
		return -1
	}
	var n int
	if _, err := fmt.Sscanf(body, `{"Clicks":%d}`, &n); err != nil {
		r.t.Fatalf("GET /%s: body %q is not {\"Clicks\":N}", key, body)
	}
	return n
}

// WaitForClicks polls the count of key until it is above above, and
// returns it.
func (r *program) WaitForClicks(key string, above int, within time.Duration) int {
	r.t.Helper()
	n := -1
	WaitFor(r.t, within, fmt.Sprintf("%s counted above %d", key, above), func() (bool, string) {
		n = r.Clicks(key)
		return n > above, fmt.Sprintf("%d\nstderr:\n%s", n, r.LastLines(40))
	})
	return n
}

// Summary is what the view's /-/summary says of all users.
type Summary struct {
	Known        bool // the page has counted the table
	Users, Total int64
}

// WaitForSummary polls /-/summary until the page has counted the table
// and done says so, and returns what it said then; what says what the
// test waits for.
func (r *program) WaitForSummary(within time.Duration, what string, done func(Summary) bool) Summary {
	r.t.Helper()
	base := r.URL()
	var st Summary
	WaitFor(r.t, within, "the view to serve "+what, func() (bool, string) {
		res, err := http.Get(base + "/-/summary?top=1")
		if err == nil {
			err = json.NewDecoder(res.Body).Decode(&st)
			res.Body.Close()
		}
		return err == nil && st.Known && done(st), fmt.Sprintf("%+v %v", st, err)
	})
	return st
}

// WaitForTotal waits, up to 2 minutes, until the view serves total clicks
// over all users.
func (r *program) WaitForTotal(total int) {
	r.t.Helper()
	r.WaitForSummary(2*time.Minute, fmt.Sprintf("%d clicks", total), func(st Summary) bool { return st.Total == int64(total) })
}

// Readiness is GET /-/ready: its status, and the state of each part (0
// and nil if it does not answer).
func (r *program) Readiness() (int, map[string]string) {
	r.t.Helper()
	client := http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(r.URL() + "/-/ready")
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	var body struct{ Parts map[string]string }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		r.t.Fatalf("GET /-/ready: %v", err)
	}
	return res.StatusCode, body.Parts
}

// WaitForReadiness polls /-/ready until it answers code, and returns the
// state of each part then. It fails the test at once if the program
// exits meanwhile.
func (r *program) WaitForReadiness(code int, within time.Duration) map[string]string {
	r.t.Helper()
	var parts map[string]string
	WaitFor(r.t, within, fmt.Sprintf("/-/ready to answer %d", code), func() (bool, string) {
		got, p := r.Readiness()
		if got == code {
			parts = p
			return true, ""
		}
		if exited := r.running(); exited != "" {
			r.t.Fatalf("the program %s while /-/ready was to answer %d:\n%s", exited, code, r.LastLines(40))
		}
		return false, fmt.Sprintf("%d %v\n%s", got, p, r.LastLines(30))
	})
	return parts
}

// WaitForMetric polls /-/metrics until the sample of name whose labels
// include labels (name=value pairs) satisfies done, and returns its value
// then; what says what the test waits for. It fails the test at once if
// /-/metrics has no such sample, or if the program exits meanwhile.
func (r *program) WaitForMetric(within time.Duration, what string, done func(float64) bool, name string, labels ...string) float64 {
	r.t.Helper()
	var v float64
	WaitFor(r.t, within, fmt.Sprintf("%s (%s%v)", what, name, labels), func() (bool, string) {
		if exited := r.running(); exited != "" {
			r.t.Fatalf("the program %s while waiting for %s:\n%s", exited, what, r.LastLines(40))
		}
		var ok bool
		v, ok = metricstest.Value(metricstest.Scrape(r.t, r.Get), name, labels...)
		if !ok {
			r.t.Fatalf("no %s%v in /-/metrics", name, labels)
		}
		return done(v), fmt.Sprintf("%v\n%s", v, r.LastLines(30))
	})
	return v
}
