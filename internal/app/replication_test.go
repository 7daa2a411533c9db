package app

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"

	"github.com/IBM/sarama"
)

func TestReplicationFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		replication, minInsync, brokers int
		wantReplication, wantMinInsync  int
		wantErr                         string
	}{
		{0, 0, 1, 1, 1, ""},
		{0, 0, 2, 2, 1, ""},
		{0, 0, 3, 3, 2, ""},
		{0, 0, 5, 3, 2, ""},
		{0, 0, 0, 1, 1, ""}, // no broker listed: the creation says why
		{1, 0, 3, 1, 1, ""},
		{2, 0, 3, 2, 1, ""},
		{5, 0, 3, 5, 2, ""}, // more than the brokers: the creation fails (TestTooSmallClusterFailsAtStart)
		{3, 3, 3, 3, 3, ""},
		{0, 1, 3, 3, 1, ""},
		{0, 2, 1, 0, 0, "-min-insync 2 is above the replication chosen for 1 brokers, 1"},
		{2, 3, 3, 0, 0, "-min-insync 3 is above -replication, 2"},
	}
	for _, tc := range tests {
		r, m, err := replicationFor(tc.replication, tc.minInsync, tc.brokers)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("replicationFor(%d, %d, %d brokers): %v, want an error with %q", tc.replication, tc.minInsync, tc.brokers, err, tc.wantErr)
			}
			continue
		}
		if err != nil || r != tc.wantReplication || m != tc.wantMinInsync {
			t.Errorf("replicationFor(%d, %d, %d brokers) = %d, %d, %v; want %d, %d", tc.replication, tc.minInsync, tc.brokers, r, m, err, tc.wantReplication, tc.wantMinInsync)
		}
	}
}

func TestReplicationFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-replication", "-1"}, "-replication must be at least 0"},
		{[]string{"-min-insync", "-1"}, "-min-insync must be at least 0"},
		{[]string{"-replication", "2", "-min-insync", "3"}, "-min-insync 3 is above -replication 2"},
	} {
		_, err := parseFlags(tc.args, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.wantErr)
		}
		if ExitCode(err, io.Discard) != 2 {
			t.Errorf("%v: exit code %d, want 2", tc.args, ExitCode(err, io.Discard))
		}
	}
	var help bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, func(string) string { return "" }, &help); err == nil {
		t.Fatal("-h: no error")
	}
	for _, f := range []string{"-replication", "-min-insync", "min.insync.replicas"} {
		if !strings.Contains(help.String(), f) {
			t.Errorf("-h does not mention %s:\n%s", f, help.String())
		}
	}
}

// A cluster with fewer brokers than -replication asks for fails at start,
// with an error that names the flag, the number asked and the brokers it
// found, and creates no topic.
func TestTooSmallClusterFailsAtStart(t *testing.T) {
	t.Parallel()
	for _, count := range []string{"1", "2"} {
		t.Run(count+" brokers", func(t *testing.T) {
			dir := t.TempDir()
			stderr := clickstest.NewBuffer()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := Run(ctx, []string{"-data", dir, "-listen", "127.0.0.1:0", "-broker-listen", "127.0.0.1:0", "-broker-count", count, "-replication", "3"},
				func(string) string { return "" }, io.Discard, stderr)
			if err == nil {
				t.Fatalf("started with -replication 3 on %s brokers", count)
			}
			addrs := clickstest.BrokersRE.FindStringSubmatch(stderr.String())
			if addrs == nil {
				t.Fatalf("the embedded brokers did not start:\n%s", stderr)
			}
			for _, want := range []string{"-replication 3", "the cluster has " + count + " broker(s)", "lower -replication or start more brokers"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			for _, a := range strings.Split(addrs[1], ",") {
				if !strings.Contains(err.Error(), a) {
					t.Errorf("error %q does not name broker %s", err, a)
				}
			}
			if code := ExitCode(err, io.Discard); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if strings.Contains(stderr.String(), `msg="created topic"`) {
				t.Errorf("a topic was created:\n%s", stderr)
			}
		})
	}
}

// With no -replication the topics get three replicas and
// min.insync.replicas=2 on a cluster of three brokers, one on one broker
// (TestTopicsAreCreatedWithSettingsThatKeepData); -replication and
// -min-insync choose others.
func TestReplicationOfCreatedTopics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args                           []string
		wantReplication, wantMinInsync int
	}{
		{[]string{"-broker-count", "3"}, 3, 2},
		{[]string{"-broker-count", "3", "-replication", "2"}, 2, 1},
		{[]string{"-broker-count", "2", "-min-insync", "2"}, 2, 2},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			in := clickstest.StartInProcess(t, Run, nil, append([]string{"-data", t.TempDir(), "-emit=false", "-process=false", "-serve=false"}, tc.args...)...)
			checkReplication(t, in.Brokers, tc.wantReplication, tc.wantMinInsync)
		})
	}
}

// checkReplication checks that the three topics have replication
// replicas in sync for every partition and the min.insync.replicas asked.
func checkReplication(t *testing.T, brokers []string, replication, minInsync int) {
	t.Helper()
	admin, topics := listTopics(t, brokers)
	names := []string{string(clicks.Topic), string(clicks.Table), string(clicks.Loop)}
	meta, err := admin.DescribeTopics(names)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range meta {
		if m.Err != sarama.ErrNoError {
			t.Fatalf("%s: %v", m.Name, m.Err)
		}
		if d := topics[m.Name]; int(d.ReplicationFactor) != replication {
			t.Errorf("%s: replication %d, want %d", m.Name, d.ReplicationFactor, replication)
		}
		for _, p := range m.Partitions {
			if len(p.Replicas) != replication || len(p.Isr) != replication {
				t.Errorf("%s/%d: replicas %v, in sync %v; want %d of each", m.Name, p.ID, p.Replicas, p.Isr, replication)
			}
		}
	}
	for _, name := range names {
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: name, ConfigNames: []string{"min.insync.replicas"}})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, e := range entries {
			if e.Name == "min.insync.replicas" {
				got = e.Value
			}
		}
		if got != strconv.Itoa(minInsync) {
			t.Errorf("%s: min.insync.replicas = %q, want %d", name, got, minInsync)
		}
	}
}
