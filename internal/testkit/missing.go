package testkit

import (
	"fmt"
	"os"
	"testing"
)

// requireParts names the one switch that turns a missing part from a skip
// into a failure. scripts/test.sh sets it to 1 once it has installed what
// the tests need, so a part that is still missing there is a bug in the
// script or the machine, not a reason to pass quietly.
const requireParts = "FLOORHUB_REQUIRE_PARTS"

// Missing reports that a real part the test needs (a binary, a Debian
// package, a runtime) is not on this machine; the message, formatted as by
// fmt.Sprintf, should say what to install. The test is skipped, or failed
// when FLOORHUB_REQUIRE_PARTS is 1. Either way it stops, so Missing must
// be called from the goroutine running t.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireParts) == "1" {
		t.Fatalf("%s (required: %s=1)", msg, requireParts)
	}
	t.Skipf("%s; skipping (%s=1 makes this a failure)", msg, requireParts)
}
