//go:build unix

package testkit

import (
	"net"
	"strconv"
	"syscall"
	"testing"
)

// RefusedAddr returns a loopback address, "127.0.0.1:port", on which every
// connection is refused, as at a server that is down. The port is bound
// but never listened on until the test ends: connections to it are
// refused, and no other process can take it meanwhile, as it could a port
// that was only free a moment ago.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	// Without SO_REUSEADDR, which would let another socket bind the port
	// too while neither listens. Close-on-exec set under ForkLock, as
	// package net does where SOCK_CLOEXEC is missing (macOS).
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatalf("testkit: socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("testkit: bind 127.0.0.1:0: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("testkit: getsockname: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}
