//go:build race

package loadgen

// raceEnabled: the race detector slows every goroutine several times.
const raceEnabled = true
