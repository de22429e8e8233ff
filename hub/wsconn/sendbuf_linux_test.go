package wsconn

import (
	"net"
	"syscall"
	"testing"
)

// Each connection's kernel send buffer is capped (Linux reports twice the
// value set).
func TestSendBuffer(t *testing.T) {
	_, url, sessions := start(t, Options{SendBufferBytes: 48 << 10})
	dial(t, url)
	e := <-sessions
	raw, err := e.c.nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		got, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if got != 2*48<<10 {
		t.Fatalf("SO_SNDBUF %d, want %d", got, 2*48<<10)
	}
}
