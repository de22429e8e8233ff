//go:build unix

package wsconn

import (
	"net"
	"syscall"
)

// directWriter writes to a socket without waiting: one write system call,
// as many bytes as the kernel takes now. It is what lets a sender write a
// message itself when the connection's queue is empty, with no writer
// goroutine to start and wake (see Conn.tryDirect).
type directWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // made once: a closure per write would allocate
	buf []byte
	n   int
	err error
}

// newDirectWriter returns a directWriter for nc, or nil when nc is not a
// plain socket (TLS, a test's pipe): those always go through the writer.
func newDirectWriter(nc net.Conn) *directWriter {
	sc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	d := &directWriter{rc: rc}
	d.fn = d.write
	return d
}

func (d *directWriter) write(fd uintptr) bool {
	d.n, d.err = syscall.Write(int(fd), d.buf)
	if d.n < 0 {
		d.n = 0
	}
	return true // never wait for the socket: the writer does that
}

// tryWrite writes what the kernel takes of b now and returns how much it
// took. An error (EAGAIN included) takes nothing; the writer goroutine
// then writes b, waits for room and reports a broken socket.
func (d *directWriter) tryWrite(b []byte) int {
	d.buf = b
	err := d.rc.Write(d.fn)
	d.buf = nil
	if err != nil || d.err != nil {
		return 0
	}
	return d.n
}
