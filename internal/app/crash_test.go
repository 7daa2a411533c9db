package app

import (
	"bufio"
	"clicks/internal/clicks"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// process is one run of the built binary.
type process struct {
	t       testing.TB
	cmd     *exec.Cmd
	stderr  *syncBuffer
	url     chan string
	viewURL string // once read from url
	exited  chan error
}

// startProcess runs the binary with args; its stdout is scanned for the
// view's address.
func startProcess(t testing.TB, bin string, args ...string) *process {
	t.Helper()
	p := &process{t: t, cmd: exec.Command(bin, args...), stderr: newSyncBuffer(), url: make(chan string, 1), exited: make(chan error, 1)}
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
				p.url <- m[1]
			}
		}
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !strings.Contains(err.Error(), "finished") {
		p.t.Fatalf("kill: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatal("process still there 10s after SIGKILL")
	}
}

// crashes returns how many SIGKILLs a crash test does: CLICKS_CRASHES
// (the soak sets it), or def.
func crashes(t *testing.T, def int) int {
	if s := os.Getenv("CLICKS_CRASHES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("CLICKS_CRASHES=%q: %v", s, err)
		}
		return n
	}
	return def
}

// checkExactlyOnce waits until a fresh instance on dir has caught up and
// checks the invariant: for every key, the count the view serves equals
// the number of clicks with that key in user-clicks.
func checkExactlyOnce(t *testing.T, args ...string) {
	t.Helper()
	in := startClicks(t, nil, append(args, "-emit=false")...)
	matchTopic(t, in.brokers, in)
}

// matchTopic reads user-clicks and waits until every view serves, for
// every key, the number of clicks with that key in it.
func matchTopic(t *testing.T, brokers []string, views ...*instance) {
	t.Helper()
	inTopic := recordsPerKey(t, brokers, string(clicks.Topic))
	if len(inTopic) == 0 {
		t.Fatal("no clicks in the topic: the test tested nothing")
	}
	total := 0
	keys := make([]string, 0, len(inTopic))
	for k, n := range inTopic {
		keys = append(keys, k)
		total += n
	}
	slices.Sort(keys)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var diffs []string
		for i, in := range views {
			for _, k := range keys {
				if got := in.clicks(k); got != inTopic[k] {
					diffs = append(diffs, fmt.Sprintf("view %d: %s: %d, topic %d", i, k, got, inTopic[k]))
				}
			}
		}
		if len(diffs) == 0 {
			t.Logf("%d clicks of %d users, each counted once in %d views", total, len(keys), len(views))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after catching up, counts differ from the topic:\n%s\nstderr:\n%s", strings.Join(diffs, "\n"), views[0].stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The whole program is killed with SIGKILL at random moments, many times,
// while it emits fast and another client writes clicks into partitions
// of its own choosing throughout; afterwards every click in the topic is
// counted once.
func TestCrashesCountEachClickOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped with -short")
	}
	bin := buildClicks(t)
	dir := t.TempDir()
	// The broker keeps its address across restarts, for the other writer.
	brokerAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// It keeps every click: the check compares with all that was written.
	args := []string{"-data", dir, "-listen", "127.0.0.1:0", "-broker-listen", brokerAddr, "-broker-keep-mib", "0", "-quiet", "-compact-interval", "1s"}
	writeTo := []string{brokerAddr}
	final := []string{"-broker-keep-mib", "0"} // what the check adds to -data
	if k := kafkaBrokers(t); k != "" {
		// On a real cluster only the program is killed, not its brokers.
		args = append(args, "-brokers", k)
		writeTo, final = strings.Split(k, ","), []string{"-brokers", k}
	}
	stopWriter := startForeignWriter(t, writeTo)
	n := crashes(t, 20)
	for i := range n {
		p := startProcess(t, bin, append(args, "-interval", "1ms")...)
		// Any moment: during start-up, recovery, or steady counting.
		time.Sleep(time.Duration(50+rand.IntN(1500)) * time.Millisecond)
		p.kill()
		if i == 0 && !brokersRE.MatchString(p.stderr.String()) {
			t.Fatalf("first run did not start:\n%s", p.stderr)
		}
	}
	// The topic must stop growing before it is compared.
	p := startProcess(t, bin, append(args, "-emit=false")...)
	waitForLog(t, p, brokersRE)
	stopWriter()
	p.kill()
	checkExactlyOnce(t, append([]string{"-data", dir}, final...)...)
}

// The broker runs in a process of its own and is killed under the running
// program, again and again. The program never exits: it rebuilds what
// failed and goes on counting, every click once.
func TestCrashesOfBrokerAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped with -short")
	}
	bin := buildClicks(t)
	brokerDir, appDir := t.TempDir(), t.TempDir()
	// Keeping every click: the check compares with all that was written.
	brokerArgs := []string{"-data", brokerDir, "-broker-keep-mib", "0", "-emit=false", "-process=false", "-serve=false"}
	broker := startProcess(t, bin, append(brokerArgs, "-broker-listen", "127.0.0.1:0")...)
	addr := waitForLog(t, broker, brokersRE)
	app := startProcess(t, bin, "-data", appDir, "-brokers", addr, "-listen", "127.0.0.1:0", "-interval", "2ms", "-quiet")
	n := crashes(t, 3)
	for range n {
		select {
		case err := <-app.exited:
			t.Fatalf("the program exited (%v) after its broker was killed:\n%s", err, lastLines(app.stderr.String(), 30))
		case <-time.After(time.Duration(1000+rand.IntN(2000)) * time.Millisecond):
		}
		broker.kill()
		broker = startProcess(t, bin, append(brokerArgs, "-broker-listen", addr)...)
		waitForLog(t, broker, brokersRE)
	}
	// Still running, and counting again.
	waitForReadiness(t, app, viewURL(t, app), http.StatusOK, 60*time.Second)
	app.kill()
	checkExactlyOnce(t, "-data", appDir, "-brokers", addr)
}

// waitForLog waits until the process logs a line re matches and returns
// its first group.
func waitForLog(t testing.TB, p *process, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			return m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no line matching %v within 30s:\n%s", re, p.stderr)
	return ""
}

// freePort returns a port nobody listens on right now, for a broker that
// must keep its address across restarts.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// The roles run as separate processes against one broker process; only
// the processor is killed.
func TestCrashesOfProcessorAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped with -short")
	}
	bin := buildClicks(t)
	brokerAddr, broker := clusterForTest(t, bin)
	emitter := startProcess(t, bin, "-data", t.TempDir(), "-brokers", brokerAddr, "-process=false", "-serve=false", "-interval", "1ms")
	procDir := t.TempDir()
	n := crashes(t, 5)
	for range n {
		start := time.Now()
		p := startProcess(t, bin, "-data", procDir, "-brokers", brokerAddr, "-emit=false", "-serve=false", "-quiet")
		time.Sleep(time.Duration(500+rand.IntN(2500)) * time.Millisecond)
		p.kill()
		t.Logf("processor killed after %v: %d setups", time.Since(start).Round(time.Millisecond), strings.Count(p.stderr.String(), "setup generation"))
	}
	if broker != nil {
		select {
		case err := <-broker.exited:
			t.Fatalf("broker process exited: %v\n%s", err, broker.stderr)
		default:
		}
	}
	emitter.kill() // the topic must stop growing before it is compared
	checkExactlyOnce(t, "-data", procDir, "-brokers", brokerAddr)
}
