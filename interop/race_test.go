//go:build race

package interop

// raceEnabled builds the agent with -race too when the tests run with it: a
// race the clients provoke makes the agent exit 66 instead of 0.
const raceEnabled = true
