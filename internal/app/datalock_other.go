//go:build !unix

package app

import "os"

// lockFile does nothing where there is no flock: two instances on one
// -data are not refused there.
func lockFile(*os.File) error { return nil }
