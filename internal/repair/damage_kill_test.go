package repair_test

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
)

// servedPerUser reads the count the view serves for each key, 0 for a
// user it does not know.
func servedPerUser(in clickstest.Running, keys []string) map[string]int {
	got := map[string]int{}
	for _, k := range keys {
		got[k] = max(in.Clicks(k), 0)
	}
	return got
}

// The program is killed with SIGKILL while it emits a click a millisecond
// and another client writes clicks into partitions of its own choosing,
// and then the last segment of a partition of each topic is damaged: cut
// to nothing, or by 5 bytes (a torn last batch). At the next start:
//
//   - user-clicks: one line for the partition says how many clicks it
//     lost that were counted; every user is served the clicks in the topic,
//     plus, in that partition, exactly those;
//   - the table's changelog: what the local tables still hold of what it
//     lost is written back, and one line says that the processor counts
//     again what the table lacks; every user is then served exactly the
//     clicks in the topic;
//   - the loop topic: one line says how many forwards it lost, and another
//     how many of them were not counted yet; those are forwarded again,
//     and every user is served exactly the clicks in the topic;
//
// and 1,000 clicks written afterwards are all counted.
func TestDamagedLogAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	for _, tc := range []struct {
		topic string
		cut   int64
	}{
		{string(clicks.Topic), 0},
		{string(clicks.Topic), 5},
		{string(clicks.Table), 0},
		{string(clicks.Table), 5},
		{string(clicks.Loop), 0},
		{string(clicks.Loop), 5},
	} {
		name := fmt.Sprintf("%s/cut=%d", tc.topic, tc.cut)
		if tc.cut == 0 {
			name = tc.topic + "/zero-length"
		}
		t.Run(name, func(t *testing.T) { damageAfterKill(t, tc.topic, tc.cut) })
	}
}

func damageAfterKill(t *testing.T, topic string, cut int64) {
	e := newEnv(t)
	// Clicks of another client, outside their users' partitions, where
	// the damage is not to user-clicks: there a lost click of such a user
	// is reported in the partition it was written to, not the user's.
	e.killUnderLoad(topic != string(clicks.Topic))

	// The partition of user-0 is damaged.
	e.damage(topic, home, cut)

	p := e.start()
	p.URL() // its view opens after the start-up repair
	inTopic := clickstest.RecordsPerKey(t, e.brokers(), string(clicks.Topic))
	delete(inTopic, "") // the fillers, and clicks without a key: no user's
	keys := append(emitterUsers(), clickstest.Keys(10)...)
	for k := range inTopic {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)

	// What the start said it lost, by partition of user-clicks.
	lost := map[int32]int{}
	log := p.Log()
	for _, m := range lostLineRE.FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[3])
		pn, _ := strconv.Atoi(m[2])
		t.Logf("reported: %s partition %s lost %d records", m[1], m[2], n)
		if m[1] == string(clicks.Topic) {
			if _, dup := lost[int32(pn)]; dup {
				t.Errorf("two lines for %s/%d:\n%s", m[1], pn, log)
			}
			lost[int32(pn)] = n
		}
	}
	written := writtenBackRE.FindAllStringSubmatch(log, -1)
	for _, m := range written {
		t.Logf("reported: table partition %s lost %s records, %s values written back", m[1], m[2], m[3])
	}
	torn := strings.Contains(log, fmt.Sprintf(`msg="partition %s-%d segment 0: truncating`, topic, home))
	switch topic {
	case string(clicks.Topic):
		// A cut of 5 bytes takes the last click, which a busy processor
		// may not have counted yet: then nothing counted was lost, and
		// the broker's line about the torn batch is all there is to say.
		elsewhere := false
		for p := range lost {
			elsewhere = elsewhere || p != home
		}
		if elsewhere || lost[home] == 0 && !torn {
			t.Errorf("reported losses %v in %s, want one line for partition %d, or the broker's line about its torn end:\n%s", lost, topic, home, log)
		}
	case string(clicks.Table):
		// What a local table held is written back (it may hold
		// nothing yet: the last second or 64 KiB of writes are lost
		// with a kill), and the rest counted again.
		if len(written) > 1 || len(written) == 1 && written[0][1] != strconv.Itoa(int(home)) {
			t.Errorf("want at most one line for table partition %d written back:\n%s", home, log)
		}
		// A cut that took only counts of clicks above the group's commit
		// needs no repair (the processor reads those clicks again): the
		// broker's line about the torn batch is all there is to say.
		again := countAgainRE.FindAllStringSubmatch(log, -1)
		for _, m := range again {
			t.Logf("reported: %s", m[0])
		}
		if len(again) > 1 || len(again) == 1 && again[0][1] != strconv.Itoa(int(home)) || len(again) == 0 && !torn {
			t.Errorf("want one line for table partition %d counted again, or the broker's line about its torn end:\n%s", home, log)
		}
	case string(clicks.Loop):
		// Forwards the group had read were counted: the loss is said,
		// and costs no count. Those it had not read may not have been
		// counted: they are found and forwarded again.
		var lines int
		for _, m := range lostLineRE.FindAllStringSubmatch(log, -1) {
			if m[1] == topic {
				lines++
				if m[2] != strconv.Itoa(int(home)) {
					t.Errorf("a loss reported in %s/%s, want only partition %d:\n%s", m[1], m[2], home, log)
				}
			}
		}
		forwards := lostForwardsRE.FindAllStringSubmatch(log, -1)
		for _, m := range forwards {
			t.Logf("reported: loop partition %s lost %s forwards not counted yet", m[1], m[2])
			if m[1] != strconv.Itoa(int(home)) {
				t.Errorf("lost forwards reported in partition %s, want only %d:\n%s", m[1], home, log)
			}
		}
		if lines > 1 || len(forwards) > 1 || lines+len(forwards) == 0 && !torn {
			t.Errorf("want one line for loop partition %d about what it lost, or the broker's line about its torn end:\n%s", home, log)
		}
	}

	// served = in the topic + reported lost, exactly: per user where
	// nothing was lost, per partition where it was.
	differences := func(served, inTopic map[string]int) []string {
		var diffs []string
		sums := map[int32][2]int{}
		for _, k := range keys {
			kp := clicks.KeyPartition(k, clicks.DefaultPartitions)
			if _, ok := lost[kp]; ok {
				s := sums[kp]
				sums[kp] = [2]int{s[0] + served[k], s[1] + inTopic[k]}
				continue
			}
			if served[k] != inTopic[k] {
				diffs = append(diffs, fmt.Sprintf("%s: served %d, in topic %d", k, served[k], inTopic[k]))
			}
		}
		for kp, s := range sums {
			if s[0] != s[1]+lost[kp] {
				diffs = append(diffs, fmt.Sprintf("partition %d: served %d, in topic %d + reported lost %d", kp, s[0], s[1], lost[kp]))
			}
		}
		total, want := 0, 0
		for _, k := range keys {
			total += served[k]
			want += inTopic[k]
		}
		for _, n := range lost {
			want += n
		}
		if total != want {
			diffs = append(diffs, fmt.Sprintf("all users: served %d, in topic + reported lost %d", total, want))
		}
		return diffs
	}
	waitForExact := func(inTopic map[string]int, what string) {
		t.Helper()
		var served map[string]int
		clickstest.WaitFor(t, time.Minute, what+": every user served what the topic holds, and what was reported lost", func() (bool, string) {
			served = servedPerUser(p, keys)
			diffs := differences(served, inTopic)
			return len(diffs) == 0, fmt.Sprintf("counts differ:\n%s\nstderr:\n%s", strings.Join(diffs, "\n"), p.LastLines(40))
		})
		total := 0
		for _, n := range served {
			total += n
		}
		t.Logf("%s: %d users, %d clicks served = in the topic + %v reported lost", what, len(keys), total, lost)
	}
	waitForExact(inTopic, "after the start")

	// New clicks are all counted, none taken for one counted before:
	// every user served what the topic holds now.
	clickstest.WriteOneClickBatches(t, e.addr, 1000)
	after := clickstest.RecordsPerKey(t, e.brokers(), string(clicks.Topic))
	delete(after, "")
	for k := range after {
		if !slices.Contains(keys, k) {
			t.Errorf("new clicks of a user %q the test did not write", k)
		}
	}
	waitForExact(after, "after 1,000 new clicks")
}

// A plain SIGKILL under load, with no log damaged: the next start finds
// nothing to repair. None of the damage lines is logged, no filler is
// written, and every user is served exactly the clicks in the topic.
func TestDamageNoneAfterPlainKill(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	e := newEnv(t)
	e.killUnderLoad(true)

	p := e.start()
	p.URL() // its view opens after the start-up repair
	inTopic := clickstest.RecordsPerKey(t, e.brokers(), string(clicks.Topic))
	if inTopic[""] != 0 {
		t.Errorf("%d records without a key in %s: fillers written after a plain kill", inTopic[""], clicks.Topic)
	}
	keys := slices.Sorted(maps.Keys(inTopic))
	total := 0
	clickstest.WaitFor(t, time.Minute, "every user served the clicks in the topic", func() (bool, string) {
		served := servedPerUser(p, keys)
		var diffs []string
		total = 0
		for _, k := range keys {
			total += served[k]
			if served[k] != inTopic[k] {
				diffs = append(diffs, fmt.Sprintf("%s: served %d, in topic %d", k, served[k], inTopic[k]))
			}
		}
		return len(diffs) == 0, "counts differ:\n" + strings.Join(diffs, "\n")
	})
	t.Logf("%d users, %d clicks served = in the topic", len(keys), total)
	checkNoDamageSaid(t, p.Log(), "a start after a plain kill")
	p.Stop()
}
