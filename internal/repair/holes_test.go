package repair

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"clicks/internal/kafka"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// persistedCluster starts an in-process broker that keeps its log in dir,
// in segments of segmentBytes, with topic (one partition) if new.
func persistedCluster(t *testing.T, dir, topic string, segmentBytes int) (*kfake.Cluster, *kafka.Config) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.SeedTopics(1, topic),
		kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(segmentBytes)}))
	if err != nil {
		t.Fatal(err)
	}
	return c, kafka.New(c.ListenAddrs(), 1, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// segmentFiles returns the segment files of partition 0 of topic under
// dir, by the offset each begins at.
func segmentFiles(t *testing.T, dir, topic string) map[int64]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "partitions", topic+"-0", "*.dat"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[int64]string{}
	for _, p := range paths {
		n, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(p), ".dat"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		files[n] = p
	}
	return files
}

// A segment file lost from the middle of a log, one emptied and one cut
// short: the broker serves on past what they held, and Holes finds
// exactly the offsets missing; an intact log has none.
func TestHolesInTheMiddleOfALog(t *testing.T) {
	const topic, n = "holes", 60
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string) // of the third segment
	}{
		{"intact", nil},
		{"lost", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"emptied", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"two emptied", nil},
		{"cut by 5 bytes", func(t *testing.T, path string) {
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, info.Size()-5); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, k := persistedCluster(t, dir, topic, 4<<10)
			// 1 KiB a record, each its own batch: about four a segment.
			value := make([]byte, 1<<10)
			for i := range n {
				if _, err := Append(k, topic, 0, [][2][]byte{{[]byte(strconv.Itoa(i)), value}}); err != nil {
					t.Fatal(err)
				}
			}
			c.Close()
			files := segmentFiles(t, dir, topic)
			starts := slices.Sorted(func(yield func(int64) bool) {
				for s := range files {
					if !yield(s) {
						return
					}
				}
			})
			if len(starts) < 5 {
				t.Fatalf("%d segments, want 5 or more: %v", len(starts), starts)
			}
			var want []Gap
			if tc.name == "two emptied" {
				// The hole of the first reaches past the second: each
				// is reported once.
				for _, i := range []int{2, 3} {
					if err := os.Truncate(files[starts[i]], 0); err != nil {
						t.Fatal(err)
					}
				}
				want = []Gap{{Topic: topic, From: starts[2], To: starts[3]}, {Topic: topic, From: starts[3], To: starts[4]}}
			}
			if tc.damage != nil {
				tc.damage(t, files[starts[2]])
				switch tc.name {
				case "cut by 5 bytes":
					// Its last batch is lost.
					want = []Gap{{Topic: topic, From: starts[3] - 1, To: starts[3]}}
				default:
					want = []Gap{{Topic: topic, From: starts[2], To: starts[3]}}
				}
			}

			c, k = persistedCluster(t, dir, topic, 4<<10)
			defer c.Close()
			client := fakeClient(t, k, k.Sarama())
			holes, err := Holes(client, topic, 0, slices.Sorted(func(yield func(int64) bool) {
				for s := range segmentFiles(t, dir, topic) {
					if !yield(s) {
						return
					}
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(holes, want) {
				t.Errorf("holes %v, want %v (segments begin at %v)", holes, want, starts)
			}
			// What the broker serves agrees: every offset outside the
			// holes, none inside.
			seen := 0
			err = Scan(client, topic, 0, 0, n, func(m *sarama.ConsumerMessage) bool {
				for _, h := range want {
					if m.Offset >= h.From && m.Offset < h.To {
						t.Errorf("offset %d served, in the hole %v", m.Offset, h)
					}
				}
				seen++
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			missing := 0
			for _, h := range want {
				missing += int(h.To - h.From)
			}
			if seen != n-missing {
				t.Errorf("served %d records, want %d - %d", seen, n, missing)
			}
		})
	}
}
