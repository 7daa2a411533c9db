//go:build race

package app

// raceEnabled: the test binary runs under the race detector.
const raceEnabled = true
