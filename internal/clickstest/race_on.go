//go:build race

package clickstest

// raceEnabled: the test binary runs under the race detector.
const raceEnabled = true
