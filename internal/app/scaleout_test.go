package app

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"clicks/internal/clickstest"
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
func waitForSplit(t *testing.T, procs []*clickstest.Process, after int) int {
	t.Helper()
	gen := -1
	var state []string
	clickstest.WaitFor(t, 60*time.Second, "the partitions to be split among the processors", func() (bool, string) {
		state = state[:0]
		gen = -1
		var all []int32
		ok := true
		for i, p := range procs {
			g, ps := lastClaims(p.Log())
			state = append(state, fmt.Sprintf("processor %d: generation %d, partitions %v", i, g, ps))
			if g <= after || (gen != -1 && g != gen) || len(ps) == 0 {
				ok = false
			}
			gen = g
			all = append(all, ps...)
		}
		slices.Sort(all)
		if ok && slices.Equal(all, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			return true, ""
		}
		seen := slices.Clone(state)
		for i, p := range procs {
			seen = append(seen, fmt.Sprintf("--- processor %d, last lines:\n%s", i, p.LastLines(40)))
		}
		return false, "\n" + strings.Join(seen, "\n")
	})
	t.Logf("split: %s", strings.Join(state, "; "))
	return gen
}

// Three processors share one cluster: the partitions are split among them,
// each one's view serves every key, and when one is killed its partitions
// move to the others and no click is lost or counted twice, the emitter's
// or another client's.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("scale-out test skipped with -short")
	}
	addr, _ := clusterForTest(t)
	emitter := clickstest.StartProcess(t, "-data", t.TempDir(), "-brokers", addr, "-process=false", "-serve=false", "-interval", "2ms")
	startProc := func() *clickstest.Process {
		return clickstest.StartProcess(t, "-data", t.TempDir(), "-brokers", addr, "-emit=false", "-listen", "127.0.0.1:0", "-quiet")
	}
	// Another client writes too, into partitions of its own choosing.
	stopWriter := clickstest.StartForeignWriter(t, strings.Split(addr, ","))
	procs := []*clickstest.Process{startProc(), startProc(), startProc()}
	gen := waitForSplit(t, procs, -1)

	// One kill in the normal run (each costs a session timeout, 10s);
	// make soak repeats it. Kills during a rebalance, which leave a
	// member kfake never expires, are TestCrashesOfProcessorAlone's job.
	n := crashes(t, 1)
	for i := range n {
		// Each view serves every key, the other processors' too.
		for j, p := range procs {
			clickstest.WaitFor(t, 30*time.Second, fmt.Sprintf("the view of processor %d to serve user-0 … user-9", j), func() (bool, string) {
				for k := 0; k < 10; k++ {
					if p.Clicks(fmt.Sprintf("user-%d", k)) < 1 {
						return false, fmt.Sprintf("no click of user-%d", k)
					}
				}
				return true, ""
			})
		}
		// One dies: the other two take over its partitions.
		victim := i % len(procs)
		procs[victim].Kill()
		rest := slices.Delete(slices.Clone(procs), victim, victim+1)
		gen = waitForSplit(t, rest, gen)
		// A replacement joins and gets its share.
		procs[victim] = startProc()
		gen = waitForSplit(t, procs, gen)
	}
	emitter.Kill()
	stopWriter()
	var views []clickstest.Running
	for _, p := range procs {
		views = append(views, p)
	}
	matchTopic(t, strings.Split(addr, ","), views...)
}
