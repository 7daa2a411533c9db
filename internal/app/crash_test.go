package app

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
)

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
	in := clickstest.StartInProcess(t, Run, nil, append(args, "-emit=false")...)
	matchTopic(t, in.Brokers, in)
}

// matchTopic reads user-clicks and waits until every view serves, for
// every key, the number of clicks with that key in it.
func matchTopic(t *testing.T, brokers []string, views ...clickstest.Running) {
	t.Helper()
	inTopic := clickstest.RecordsPerKey(t, brokers, string(clicks.Topic))
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
	clickstest.WaitFor(t, 60*time.Second, "every view to serve the count of every key in the topic", func() (bool, string) {
		var diffs []string
		for i, in := range views {
			for _, k := range keys {
				if got := in.Clicks(k); got != inTopic[k] {
					diffs = append(diffs, fmt.Sprintf("view %d: %s: %d, topic %d", i, k, got, inTopic[k]))
				}
			}
		}
		return len(diffs) == 0, fmt.Sprintf("counts differ from the topic:\n%s\nstderr:\n%s", strings.Join(diffs, "\n"), views[0].LastLines(40))
	})
	t.Logf("%d clicks of %d users, each counted once in %d views", total, len(keys), len(views))
}

// The whole program is killed with SIGKILL at random moments, many times,
// while it emits fast and another client writes clicks into partitions
// of its own choosing throughout; afterwards every click in the topic is
// counted once.
func TestCrashesCountEachClickOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped with -short")
	}
	dir := t.TempDir()
	// The broker keeps its address across restarts, for the other writer.
	brokerAddr := fmt.Sprintf("127.0.0.1:%d", clickstest.FreePort(t))
	// It keeps every click: the check compares with all that was written.
	args := []string{"-data", dir, "-listen", "127.0.0.1:0", "-broker-listen", brokerAddr, "-broker-keep-mib", "0", "-quiet", "-compact-interval", "1s"}
	writeTo := []string{brokerAddr}
	final := []string{"-broker-keep-mib", "0"} // what the check adds to -data
	if k := kafkaBrokers(t); k != "" {
		// On a real cluster only the program is killed, not its brokers.
		args = append(args, "-brokers", k)
		writeTo, final = strings.Split(k, ","), []string{"-brokers", k}
	}
	stopWriter := clickstest.StartForeignWriter(t, writeTo)
	n := crashes(t, 20)
	for i := range n {
		p := clickstest.StartProcess(t, append(args, "-interval", "1ms")...)
		// Any moment: during start-up, recovery, or steady counting.
		time.Sleep(time.Duration(50+rand.IntN(1500)) * time.Millisecond)
		p.Kill()
		if i == 0 && !clickstest.BrokersRE.MatchString(p.Log()) {
			t.Fatalf("first run did not start:\n%s", p.Log())
		}
	}
	// The topic must stop growing before it is compared.
	p := clickstest.StartProcess(t, append(args, "-emit=false")...)
	p.WaitForBrokers()
	stopWriter()
	p.Kill()
	checkExactlyOnce(t, append([]string{"-data", dir}, final...)...)
}

// The broker runs in a process of its own and is killed under the running
// program, again and again. The program never exits: it rebuilds what
// failed and goes on counting, every click once.
func TestCrashesOfBrokerAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped with -short")
	}
	brokerDir, appDir := t.TempDir(), t.TempDir()
	// Keeping every click: the check compares with all that was written.
	brokerArgs := []string{"-data", brokerDir, "-broker-keep-mib", "0", "-emit=false", "-process=false", "-serve=false"}
	broker := clickstest.StartProcess(t, append(brokerArgs, "-broker-listen", "127.0.0.1:0")...)
	addr := broker.WaitForBrokers()[0]
	app := clickstest.StartProcess(t, "-data", appDir, "-brokers", addr, "-listen", "127.0.0.1:0", "-interval", "2ms", "-quiet")
	n := crashes(t, 3)
	for range n {
		select {
		case <-app.Done():
			t.Fatalf("the program exited (%v) after its broker was killed:\n%s", app.Err(), app.LastLines(30))
		case <-time.After(time.Duration(1000+rand.IntN(2000)) * time.Millisecond):
		}
		broker.Kill()
		broker = clickstest.StartProcess(t, append(brokerArgs, "-broker-listen", addr)...)
		broker.WaitForBrokers()
	}
	// Still running, and counting again.
	app.WaitForReadiness(http.StatusOK, 60*time.Second)
	app.Kill()
	checkExactlyOnce(t, "-data", appDir, "-brokers", addr)
}

// The roles run as separate processes against one broker process; only
// the processor is killed.
func TestCrashesOfProcessorAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped with -short")
	}
	brokerAddr, broker := clusterForTest(t)
	emitter := clickstest.StartProcess(t, "-data", t.TempDir(), "-brokers", brokerAddr, "-process=false", "-serve=false", "-interval", "1ms")
	procDir := t.TempDir()
	n := crashes(t, 5)
	for range n {
		start := time.Now()
		p := clickstest.StartProcess(t, "-data", procDir, "-brokers", brokerAddr, "-emit=false", "-serve=false", "-quiet")
		time.Sleep(time.Duration(500+rand.IntN(2500)) * time.Millisecond)
		p.Kill()
		t.Logf("processor killed after %v: %d setups", time.Since(start).Round(time.Millisecond), strings.Count(p.Log(), "setup generation"))
	}
	if broker != nil {
		select {
		case <-broker.Done():
			t.Fatalf("broker process exited: %v\n%s", broker.Err(), broker.Log())
		default:
		}
	}
	emitter.Kill() // the topic must stop growing before it is compared
	checkExactlyOnce(t, "-data", procDir, "-brokers", brokerAddr)
}
