package clickstest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// RunFunc runs the whole program, as app.Run does: the tests of package
// app pass theirs (this package cannot import it).
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Instance is one run of the whole program inside the test's process.
type Instance struct {
	*program
	Brokers []string // the brokers it uses
	cancel  context.CancelFunc
	stopped bool
}

// StartInProcess runs the program (run) with args on free ports and
// waits until it has said which brokers it uses and, if it serves,
// where, and, if it runs the processor or the embedded broker, until its
// start-up repair is done. getenv nil is an empty environment. It is
// stopped when the test ends, if it still runs.
func StartInProcess(t testing.TB, run RunFunc, getenv func(string) string, args ...string) *Instance {
	t.Helper()
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	args = append([]string{"-listen", "127.0.0.1:0", "-broker-listen", "127.0.0.1:0", "-quiet"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	in := &Instance{program: newProgram(t), cancel: cancel}
	stdout := NewBuffer()
	go func() { in.exit(run(ctx, args, getenv, stdout, in.stderr)) }()
	t.Cleanup(func() {
		if in.stopped {
			return
		}
		select {
		case <-in.exited:
			if t.Failed() {
				return // the test has said so
			}
		default:
		}
		in.Stop()
	})

	serve := !slices.Contains(args, "-serve=false")
	// An instance that runs the processor or the embedded broker is
	// ready once its start-up repair is done: the topics are there, and
	// the embedded broker takes writes to them.
	repairs := !slices.Contains(args, "-process=false") || !slices.Contains(args, "-brokers") && getenv("KAFKA_BROKERS") == ""
	WaitFor(t, 30*time.Second, fmt.Sprintf("clicks %v to start", args), func() (bool, string) {
		log := in.Log()
		if m := BrokersRE.FindStringSubmatch(log); m != nil && in.Brokers == nil {
			in.Brokers = strings.Split(m[1], ",")
		}
		if m := viewOpenedRE.FindStringSubmatch(stdout.String()); m != nil {
			in.open(m[1])
		}
		repaired := !repairs || RepairedRE.MatchString(log)
		if in.Brokers != nil && (in.url != "" || !serve) && repaired {
			return true, ""
		}
		if exited := in.running(); exited != "" {
			in.stopped = true
			t.Fatalf("clicks %v %s early\nstderr:\n%s", args, exited, in.Log())
		}
		return false, "\nstderr:\n" + LastLines(log, 40)
	})
	return in
}

// Stop ends the program as SIGINT would and checks that it stops
// cleanly, within 20 s.
func (in *Instance) Stop() {
	in.t.Helper()
	in.stopped = true
	in.cancel()
	WaitFor(in.t, 20*time.Second, "clicks to stop", func() (bool, string) {
		select {
		case <-in.exited:
			return true, ""
		default:
			return false, "still running:\n" + in.LastLines(40)
		}
	})
	if in.err != nil {
		in.t.Errorf("clicks stopped with %v\nstderr:\n%s", in.err, in.Log())
	}
}
