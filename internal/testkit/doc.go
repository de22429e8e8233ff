// Package testkit is floorhub's one test-support package. Tests import it
// instead of keeping their own copies of the same few helpers:
//
//   - [Eventually] and [WaitTrue] wait for a condition with a deadline,
//     checking it on a short ticker, so a test waits exactly as long as it
//     must and never sleeps a guessed amount;
//   - [Buffer] is a bytes buffer that goroutines (a logger, the copier
//     os/exec starts for a child's output) may write while the test reads it;
//   - [Listen] and [ListenAddr] listen on 127.0.0.1:0 and read the chosen
//     address back. A test never listens, closes and hands the port on:
//     another process may take it in between; [RefusedAddr] is an address
//     that refuses connections (a server that is down), held for the test;
//   - [RaceEnabled] says whether the tests run with -race, which inflates
//     memory and time: memory and stack figures are asserted only without it;
//   - [Missing] reports that a real part a test needs (a binary, a Debian
//     package) is absent. It skips the test, or fails it when the
//     environment variable FLOORHUB_REQUIRE_PARTS is 1, which
//     scripts/test.sh sets after installing those parts. That variable is
//     the one switch: nothing else turns a skip into a failure.
//
// Every helper takes the testing.TB it runs in: a helper called from a
// subtest gets the subtest's t, so a failure is reported where it happened
// and t.Fatal is only called from the goroutine running that test.
//
// Other files in this package are each owned by the helper that needs them;
// this file documents the package as a whole.
package testkit
