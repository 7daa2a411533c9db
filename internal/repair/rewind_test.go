package repair_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/metrics/metricstest"
	"clicks/internal/repair"

	"github.com/IBM/sarama"
)

// rewindSetup runs a broker process and, with it, an instance that
// counts n clicks; then the table's changelog loses user-0's partition
// and the instance its local tables, so that its next start must have
// the processor group read those clicks again. The instance is
// startInstance("x") of the env it returns, whose broker runs until the
// test ends.
func rewindSetup(t *testing.T, n int) *env {
	t.Helper()
	e := newApartEnv(t)
	broker := e.startBroker()
	x := e.startInstance("x")
	clickstest.WriteOneClickBatches(t, e.addr, n)
	x.WaitForTotal(n)
	x.Stop()
	broker.Stop()
	e.damage(string(clicks.Table), home, 0)
	if err := os.RemoveAll(filepath.Join(e.dir, "x")); err != nil {
		t.Fatal(err)
	}
	broker = e.startBroker()
	t.Cleanup(func() { broker.Stop() })
	return e
}

// joinAndDie makes a member join group and never heartbeat, as a
// processor killed while its broker runs: the coordinator keeps it until
// its session times out.
func joinAndDie(t *testing.T, client sarama.Client, group string, session time.Duration) {
	t.Helper()
	coordinator, err := client.Coordinator(group)
	if err != nil {
		t.Fatal(err)
	}
	join := &sarama.JoinGroupRequest{Version: 1, GroupId: group, SessionTimeout: int32(session.Milliseconds()),
		RebalanceTimeout: int32(session.Milliseconds()), ProtocolType: "consumer"}
	if err := join.AddGroupProtocolMetadata("range", &sarama.ConsumerGroupMemberMetadata{Topics: []string{string(clicks.Topic)}}); err != nil {
		t.Fatal(err)
	}
	joined, err := coordinator.JoinGroup(join)
	if err != nil || !errors.Is(joined.Err, sarama.ErrNoError) {
		t.Fatalf("join %s: %v %v", group, err, joined)
	}
	sync := &sarama.SyncGroupRequest{GroupId: group, GenerationId: joined.GenerationId, MemberId: joined.MemberId}
	sync.AddGroupAssignment(joined.MemberId, nil)
	if synced, err := coordinator.SyncGroup(sync); err != nil || !errors.Is(synced.Err, sarama.ErrNoError) {
		t.Fatalf("sync %s: %v %v", group, err, synced)
	}
	members, state, err := repair.GroupMembers(client, group)
	if err != nil || members != 1 {
		t.Fatalf("group %s after the join: %d members, %s, %v", group, members, state, err)
	}
}

// A processor killed while its broker runs stays a member of the group
// until its session times out, and the coordinator refuses the rewind
// the next start's repair needs meanwhile: the repair waits for the
// group to empty, then has the lost counts made again.
func TestDamageRewindWaitsForKilledMember(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	const n = 1000
	e := rewindSetup(t, n)
	joinAndDie(t, e.client(), string(clicks.Group), 6*time.Second)

	start := time.Now()
	x := e.startInstance("x")
	x.WaitForLog(lineRE(groupWaitMsg, `[^\n]* members=1`), 30*time.Second)
	re := lineRE(countAgainMsg, `[^\n]* partition=`+strconv.Itoa(int(home)))
	x.WaitForLog(re, 30*time.Second)
	x.WaitForRepair()
	t.Logf("repair done %v after the start", time.Since(start).Round(100*time.Millisecond))
	if m := regexp.MustCompile(`level=ERROR[^\n]*`).FindString(x.Log()); m != "" {
		t.Errorf("an error: %s", m)
	}
	x.WaitForTotal(n)
	x.Stop()
}

// Where the group keeps a member (another instance's processor), the
// counts the repair needed made again stay lost: an error line says
// which records, and clicks_not_counted_again_total counts them.
func TestDamageRewindRefusedIsReported(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	const n = 1000
	e := rewindSetup(t, n)
	release := e.holdGroup()
	defer release()

	// The wait for the group is shortened: it cannot empty here.
	x := e.startInstance("x", "-repair-group-wait", "2s")
	re := errorLineRE(notReadAgainMsg, `[^\n]* topic=user-clicks partition=`+
		strconv.Itoa(int(home))+` offsets=0-(\d+) records_not_counted_again=(\d+)`)
	m := x.WaitForLog(re, 30*time.Second)
	t.Logf("reported: %s", m[0])
	records, _ := strconv.Atoi(m[2])
	if records != n/10 {
		t.Errorf("reported %d records not counted again, want user-0's partition's %d", records, n/10)
	}
	x.URL() // its view opens after the start-up repair: what that says is logged
	var total float64
	for _, line := range regexp.MustCompile(`records_not_counted_again=(\d+)`).FindAllStringSubmatch(x.Log(), -1) {
		v, _ := strconv.Atoi(line[1])
		total += float64(v)
	}
	if got, _ := metricstest.Value(metricstest.Scrape(t, x.Get), "clicks_not_counted_again_total"); got != total {
		t.Errorf("clicks_not_counted_again_total = %v, want the %v reported", got, total)
	}
	// Killed: its processor cannot join while the other member holds
	// the partitions, and a SIGTERM then exits 1.
	x.Kill()
}
