//go:build race

package testkit

// RaceEnabled is true when the tests run with -race. The race detector
// inflates memory (shadow memory, larger stacks and heaps) and time, so a
// test asserts memory or stack figures only without it and merely logs them
// with it.
const RaceEnabled = true
