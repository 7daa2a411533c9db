package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// SegmentStarts returns the offsets at which the segment files of
// partition p of topic begin, in order: kfake names each file after the
// offset of its first record batch (<base>.dat, persist.go), in a
// directory per partition. repair.Holes uses them to find records lost
// from the middle of a log.
func (b *Embedded) SegmentStarts(topic string, p int32) ([]int64, error) {
	dir := filepath.Join(b.cfg.Dir, "partitions", fmt.Sprintf("%s-%d", url.PathEscape(topic), p))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing written to it yet
	}
	if err != nil {
		return nil, fmt.Errorf("segment files of %s/%d: %w", topic, p, err)
	}
	var starts []int64
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".dat")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(base, 10, 64); err == nil {
			starts = append(starts, n)
		}
	}
	slices.Sort(starts)
	return starts, nil
}
