package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LogEnds are where the logs of some topics ended, by topic name.
type LogEnds map[string]TopicEnds

// TopicEnds are a topic's ID and, for each of its partitions, the offset
// of its first record and the offset after its last (equal where the log
// is empty).
type TopicEnds struct {
	ID     string          `json:"id"`
	Starts map[int32]int64 `json:"starts"`
	Ends   map[int32]int64 `json:"ends"`
}

// logEndsFile is where SaveLogEnds keeps them, beside the log.
const logEndsFile = "log-ends.json"

// loadLogEnds reads what SaveLogEnds last wrote in dir; nothing if it
// never did.
func loadLogEnds(dir string) (LogEnds, error) {
	data, err := os.ReadFile(filepath.Join(dir, logEndsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the log ends recorded: %w", err)
	}
	var e LogEnds
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("read the log ends recorded in %s: %w", filepath.Join(dir, logEndsFile), err)
	}
	return e, nil
}

// PreviousLogEnds are the log ends SaveLogEnds last recorded before this
// start: kfake keeps no such record, and a log that lost its end (a
// power loss without -sync: the disk had not written what the broker
// had acknowledged) is found only by comparing with it.
func (b *Embedded) PreviousLogEnds() LogEnds { return b.previousEnds }

// SaveLogEnds records e, and syncs it to the disk, so that the next
// start can tell whether the logs lost their ends.
func (b *Embedded) SaveLogEnds(e LogEnds) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("record the log ends: %w", err)
	}
	path := filepath.Join(b.cfg.Dir, logEndsFile)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("record the log ends: %w", err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return errors.Join(fmt.Errorf("record the log ends in %s: %w", tmp, err), os.Remove(tmp))
	}
	// The directory is not synced: a rename the disk lost leaves the ends
	// recorded before, lower, which can only say less was lost, never
	// more; and it saves a second sync a second.
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("record the log ends: %w", err)
	}
	return nil
}
