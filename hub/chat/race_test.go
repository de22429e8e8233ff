//go:build race

package chat

// raceEnabled tells TestSessionMemory that memory is inflated.
const raceEnabled = true
