package testkit

import (
	"net"
	"testing"
)

// Listen listens on a TCP port of 127.0.0.1 that the kernel chooses and
// closes the listener when the test ends. The listener is handed on as it
// is (to an http.Server, to the code under test); a test that needs the
// address reads it from the listener, never by closing it and reusing the
// port, which another process may take in between.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: listen on 127.0.0.1:0: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// ListenAddr is Listen that also returns the listener's address as
// "127.0.0.1:port".
func ListenAddr(t testing.TB) (net.Listener, string) {
	t.Helper()
	l := Listen(t)
	return l, l.Addr().String()
}
