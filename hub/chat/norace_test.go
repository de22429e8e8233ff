//go:build !race

package chat

// raceEnabled: see race_test.go.
const raceEnabled = false
