package testkit

import (
	"testing"
	"time"
)

// interval is how often Eventually and WaitTrue check their condition:
// short against the deadlines tests use, long enough not to spin.
const interval = 2 * time.Millisecond

// WaitTrue reports whether cond held within d. cond is checked at once,
// then every few milliseconds, and a last time when d has passed.
func WaitTrue(d time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	tick := time.NewTicker(interval)
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

// Eventually fails t unless cond holds within d; what names the condition
// in the failure ("timed out after 5s waiting for the subscription"). Like
// t.Fatal, it must be called from the goroutine running t.
func Eventually(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	if !WaitTrue(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}
