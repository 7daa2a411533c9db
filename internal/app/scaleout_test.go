package app

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// claimsRE finds the user-clicks partitions of a processor's setup (goka
// claims the same ones of the loop topic).
var claimsRE = regexp.MustCompile(`setup generation (\d+), claims=map\[string\]\[\]int32\{[^\n]*?\\"user-clicks\\":\[\]int32\{([0-9, ]*)\}`)

// lastClaims returns the generation and partitions of the last setup a
// processor logged, or -1.
func lastClaims(log string) (int, []int32) {
	all := claimsRE.FindAllStringSubmatch(log, -1)
	if len(all) == 0 {
		return -1, nil
	}
	m := all[len(all)-1]
	gen, _ := strconv.Atoi(m[1])
	var ps []int32
	for f := range strings.FieldsSeq(strings.ReplaceAll(m[2], ",", " ")) {
		p, _ := strconv.Atoi(f)
		ps = append(ps, int32(p))
	}
	return gen, ps
}

// waitForSplit waits until the processors' last setups are of one
// generation and split the partitions among them, each partition once.
func waitForSplit(t *testing.T, procs []*process, after int) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var state []string
	for time.Now().Before(deadline) {
		state = state[:0]
		gen := -1
		var all []int32
		ok := true
		for i, p := range procs {
			g, ps := lastClaims(p.stderr.String())
			state = append(state, fmt.Sprintf("processor %d: generation %d, partitions %v", i, g, ps))
			if g <= after || (gen != -1 && g != gen) || len(ps) == 0 {
				ok = false
			}
			gen = g
			all = append(all, ps...)
		}
		slices.Sort(all)
		if ok && slices.Equal(all, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Logf("split: %s", strings.Join(state, "; "))
			return gen
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, p := range procs {
		state = append(state, fmt.Sprintf("--- processor %d, last lines:\n%s", i, lastLines(p.stderr.String(), 40)))
	}
	t.Fatalf("the partitions were not split among the processors within 60s:\n%s", strings.Join(state, "\n"))
	return 0
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Three processors share one cluster: the partitions are split among them,
// each one's view serves every key, and when one is killed its partitions
// move to the others and no click is lost or counted twice, the emitter's
// or another client's.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("scale-out test skipped with -short")
	}
	bin := buildClicks(t)
	addr, _ := clusterForTest(t, bin)
	emitter := startProcess(t, bin, "-data", t.TempDir(), "-brokers", addr, "-process=false", "-serve=false", "-interval", "2ms")
	startProc := func() *process {
		return startProcess(t, bin, "-data", t.TempDir(), "-brokers", addr, "-emit=false", "-listen", "127.0.0.1:0", "-quiet")
	}
	// Another client writes too, into partitions of its own choosing.
	stopWriter := startForeignWriter(t, strings.Split(addr, ","))
	procs := []*process{startProc(), startProc(), startProc()}
	gen := waitForSplit(t, procs, -1)

	// One kill in the normal run (each costs a session timeout, 10s);
	// make soak repeats it. Kills during a rebalance, which leave a
	// member kfake never expires, are TestCrashesOfProcessorAlone's job.
	n := crashes(t, 1)
	for i := range n {
		// Each view serves every key, the other processors' too.
		for j, p := range procs {
			v := &instance{t: t, url: viewURL(t, p), stderr: p.stderr}
			deadline := time.Now().Add(30 * time.Second)
			for k := 0; k < 10; k++ {
				for v.clicks(fmt.Sprintf("user-%d", k)) < 1 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if v.clicks(fmt.Sprintf("user-%d", k)) < 1 {
					t.Fatalf("view of processor %d does not serve user-%d", j, k)
				}
			}
		}
		// One dies: the other two take over its partitions.
		victim := i % len(procs)
		procs[victim].kill()
		rest := slices.Delete(slices.Clone(procs), victim, victim+1)
		gen = waitForSplit(t, rest, gen)
		// A replacement joins and gets its share.
		procs[victim] = startProc()
		gen = waitForSplit(t, procs, gen)
	}
	emitter.kill()
	stopWriter()
	var views []*instance
	for _, p := range procs {
		views = append(views, &instance{t: t, url: viewURL(t, p), stderr: p.stderr})
	}
	matchTopic(t, strings.Split(addr, ","), views...)
}

// viewURL waits for the address a process's view opened at.
func viewURL(t testing.TB, p *process) string {
	t.Helper()
	if p.viewURL != "" {
		return p.viewURL
	}
	select {
	case p.viewURL = <-p.url:
		return p.viewURL
	case <-time.After(30 * time.Second):
		t.Fatalf("no view opened:\n%s", p.stderr)
		return ""
	}
}
