//go:build race

package wsconn

// raceEnabled: the race detector grows stacks and heaps, so memory figures
// are logged, not checked.
const raceEnabled = true
