// Package eventually waits, in tests, for a condition to hold: it checks the
// condition on a ticker until a deadline, so a test waits exactly as long as
// it must and fails with a clear message when the deadline passes. It never
// sleeps a guessed amount.
package eventually

import (
	"testing"
	"time"
)

// Interval is how often conditions are checked.
const Interval = 2 * time.Millisecond

// True reports whether cond held before d passed.
func True(d time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return true
			}
		case <-deadline.C:
			return cond()
		}
	}
}

// Until fails the test unless cond holds within d; what names the
// condition in the failure.
func Until(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	if !True(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}
