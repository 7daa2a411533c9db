package clickstest

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Main is the TestMain of a package whose tests run the program. It lets
// more tests run at once than there are cores, unless -parallel is given:
// the whole-program tests wait on brokers, rebalances and timers far more
// than they compute (go test -short of internal/app took 78 s of wall
// time for 10 s of CPU one at a time). It removes the program the tests
// built (Build) once they are done.
func Main(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		// Half as many under the race detector, which makes every test
		// several times slower: with eight at once a view timed out
		// under it.
		parallel := "8"
		if raceEnabled {
			parallel = "4"
		}
		if err := flag.Set("test.parallel", parallel); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built is the program built once for the whole test binary, and
// removed by Main after it.
var built struct {
	once      sync.Once
	dir, path string
	err       error
}

// Build compiles the program, once per test binary, and returns its
// path.
func Build(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "clicks-test-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		built.path = filepath.Join(dir, "clicks")
		if out, err := exec.Command("go", "build", "-o", built.path, "clicks").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// Process is one run of the built program, in a process of its own.
type Process struct {
	*program
	cmd *exec.Cmd
}

// StartProcess runs the built program (see Build) with args. Its stdout
// is read for the view's address; what it logs is in Log. It is killed
// when the test ends, if it still runs.
func StartProcess(t testing.TB, args ...string) *Process {
	t.Helper()
	p := &Process{program: newProgram(t), cmd: exec.Command(Build(t), args...)}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if m := viewOpenedRE.FindStringSubmatch(lines.Text()); m != nil {
				p.open(m[1])
			}
		}
		io.Copy(io.Discard, stdout) // after a line too long for the scanner
		p.exit(p.cmd.Wait())
	}()
	t.Cleanup(p.Kill)
	return p
}

// PID is the process's ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("send %v: %v", sig, err)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("kill: %v", err)
	}
	p.waitForExit(10*time.Second, "SIGKILL")
}

// Stop sends SIGTERM and checks that the process exits with status 0
// within 30 s.
func (p *Process) Stop() {
	p.t.Helper()
	p.StopWith(syscall.SIGTERM, 30*time.Second)
}

// StopWith sends sig and checks that the process exits with status 0
// within the time given.
func (p *Process) StopWith(sig os.Signal, within time.Duration) {
	p.t.Helper()
	p.Signal(sig)
	p.waitForExit(within, sig.String())
	if err := p.Err(); err != nil {
		p.t.Fatalf("after %v: %v (want exit status 0)\nstderr:\n%s", sig, err, p.LastLines(30))
	}
}

// waitForExit waits until the process has exited after what was done
// to it.
func (p *Process) waitForExit(within time.Duration, after string) {
	p.t.Helper()
	WaitFor(p.t, within, "the process to exit after "+after, func() (bool, string) {
		select {
		case <-p.exited:
			return true, ""
		default:
			return false, "still running:\n" + p.LastLines(30)
		}
	})
}
