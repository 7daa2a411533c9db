package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// dataLockFile is the file in -data that the running instance holds
// locked, its process ID inside.
const dataLockFile = "clicks.lock"

// errDataInUse is the start refused because another instance holds -data.
var errDataInUse = errors.New("data directory in use")

// lockDataDir takes -data for this process before anything in it opens:
// two instances on one directory would start two embedded brokers on one
// log and share local tables, and fail only later and obscurely. The lock
// is the operating system's, so a killed instance leaves none behind; the
// returned func releases it.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, dataLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		pid := strings.TrimSpace(string(holder))
		if pid == "" {
			pid = "unknown"
		}
		return nil, fmt.Errorf("%w: %s is used by another clicks (process %s); give each instance a -data of its own: %v", errDataInUse, dir, pid, err)
	}
	terr := f.Truncate(0)
	_, werr := f.WriteString(strconv.Itoa(os.Getpid()) + "\n") // just opened: at offset 0
	if err := errors.Join(terr, werr, f.Sync()); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
