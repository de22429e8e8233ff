//go:build !unix

package testkit

import "testing"

// RefusedAddr returns a loopback address, "127.0.0.1:port", on which every
// connection fails at once, as at a server that is down. Without the unix
// socket calls, the port is a listener that closes every connection it
// accepts: the dial succeeds, the first read or write fails.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	l, addr := ListenAddr(t)
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed when the test ends
			}
			c.Close()
		}
	}()
	return addr
}
