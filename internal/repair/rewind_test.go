package repair_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/kafka"
	"clicks/internal/metrics/metricstest"
	"clicks/internal/repair"

	"github.com/IBM/sarama"
)

// rewindSetup runs a broker process and, with it, an instance that
// counts n clicks; then the table's changelog loses user-0's partition
// and the instance its local tables, so that its next start must have
// the processor group read those clicks again. It returns the broker's
// address, the partition and the instance's arguments.
func rewindSetup(t *testing.T, n int) (addr string, part int32, args []string) {
	t.Helper()
	dir := t.TempDir()
	addr = "127.0.0.1:" + strconv.Itoa(clickstest.FreePort(t))
	brokerArgs := []string{"-data", filepath.Join(dir, "b"), "-broker-listen", addr, "-emit=false", "-process=false", "-serve=false"}
	broker := clickstest.StartProcess(t, brokerArgs...)
	broker.WaitForBrokers()
	args = []string{"-brokers", addr, "-data", filepath.Join(dir, "x"), "-listen", "127.0.0.1:0", "-emit=false", "-quiet"}
	x := clickstest.StartProcess(t, args...)
	clickstest.WriteOneClickBatches(t, addr, n)
	x.WaitForTotal(n)
	x.Stop()
	broker.Stop()
	part = clicks.KeyPartition("user-0", clicks.DefaultPartitions)
	damageSegment(t, filepath.Join(dir, "b"), string(clicks.Table), part, 0)
	if err := os.RemoveAll(filepath.Join(dir, "x")); err != nil {
		t.Fatal(err)
	}
	broker = clickstest.StartProcess(t, brokerArgs...)
	broker.WaitForBrokers()
	t.Cleanup(func() { broker.Stop() })
	return addr, part, args
}

// joinAndDie makes a member join group and never heartbeat, as a
// processor killed while its broker runs: the coordinator keeps it until
// its session times out.
func joinAndDie(t *testing.T, k *kafka.Config, client sarama.Client, group string, session time.Duration) {
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
	addr, part, args := rewindSetup(t, n)
	k := kafka.New([]string{addr}, 1, clicks.DefaultPartitions, slog.New(slog.NewTextHandler(io.Discard, nil)))
	client, err := sarama.NewClient([]string{addr}, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	joinAndDie(t, k, client, string(clicks.Group), 6*time.Second)

	start := time.Now()
	x := clickstest.StartProcess(t, args...)
	x.WaitForLog(lineRE(groupWaitMsg, `[^\n]* members=1`), 30*time.Second)
	re := lineRE(countAgainMsg, `[^\n]* partition=`+strconv.Itoa(int(part)))
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
	addr, part, args := rewindSetup(t, n)
	k := kafka.New([]string{addr}, 1, clicks.DefaultPartitions, slog.New(slog.NewTextHandler(io.Discard, nil)))
	group, err := sarama.NewConsumerGroup([]string{addr}, string(clicks.Group), k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() { consumed <- group.Consume(ctx, []string{string(clicks.Topic)}, holdPartitions{}) }()
	defer func() {
		cancel()
		if err := <-consumed; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("other member: %v", err)
		}
		if err := group.Close(); err != nil {
			t.Errorf("close the other member: %v", err)
		}
	}()
	client, err := sarama.NewClient([]string{addr}, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	clickstest.WaitFor(t, time.Minute, "the other member to join the group", func() (bool, string) {
		members, state, err := repair.GroupMembers(client, string(clicks.Group))
		return err == nil && members > 0 && state == "Stable", fmt.Sprintf("%d members, %s, %v", members, state, err)
	})

	// The wait for the group is shortened: it cannot empty here.
	x := clickstest.StartProcess(t, append(args, "-repair-group-wait", "2s")...)
	re := errorLineRE(notReadAgainMsg, `[^\n]* topic=user-clicks partition=`+
		strconv.Itoa(int(part))+` offsets=0-(\d+) records_not_counted_again=(\d+)`)
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
