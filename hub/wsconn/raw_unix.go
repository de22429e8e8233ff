//go:build unix

package wsconn

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// rawSocket reads and writes a plain socket with system calls that never
// wait, which lets the core (see Conn.tryDirect and Conn.readLoop)
//   - write a message in the sender's goroutine when the connection's
//     queue is empty, with no writer goroutine to start and wake;
//   - wait for a client's next bytes with a shallow stack and no buffer,
//     taking a pooled one only once the bytes are there: an idle
//     connection's reader then fits the smallest goroutine stack.
//
// Reads and writes may run at the same time (the reader's and the
// writers' fields are apart); each side is used by one goroutine at a
// time.
type rawSocket struct {
	rc syscall.RawConn

	wfn  func(fd uintptr) bool // made once: a closure per call would allocate
	wbuf []byte
	wn   int
	werr error

	rfn  func(fd uintptr) bool
	pool *sync.Pool // of *[]byte
	rbuf *[]byte
	rn   int
	rerr error
}

// newRawSocket returns a rawSocket for nc, or nil when nc is not a plain
// TCP socket (TLS, a test's pipe): those are read and written through
// net.Conn.
func newRawSocket(nc net.Conn, pool *sync.Pool) *rawSocket {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawSocket{rc: rc, pool: pool}
	r.wfn, r.rfn = r.write, r.read
	return r
}

func (r *rawSocket) write(fd uintptr) bool {
	for {
		r.wn, r.werr = syscall.Write(int(fd), r.wbuf)
		if r.werr != syscall.EINTR {
			break
		}
	}
	r.wn = max(r.wn, 0)
	return true // never wait for the socket: the writer does that
}

// tryWrite writes what the kernel takes of b now and returns how much it
// took. An error (EAGAIN included) takes nothing; the writer goroutine
// then writes b, waits for room and reports a broken socket.
func (r *rawSocket) tryWrite(b []byte) int {
	r.wbuf = b
	err := r.rc.Write(r.wfn)
	r.wbuf = nil
	if err != nil || r.werr != nil {
		return 0
	}
	return r.wn
}

func (r *rawSocket) read(fd uintptr) bool {
	buf := r.pool.Get().(*[]byte)
	for {
		r.rn, r.rerr = syscall.Read(int(fd), *buf)
		if r.rerr != syscall.EINTR {
			break
		}
	}
	if r.rerr == syscall.EAGAIN {
		r.pool.Put(buf)
		return false // nothing yet: the runtime waits for the socket, then calls again
	}
	r.rn = max(r.rn, 0)
	r.rbuf = buf
	return true
}

// readSome waits for the client's next bytes and returns them in a pooled
// buffer (put it back when done), or the error that ended the reading: the
// read deadline, a closed or broken socket, io.EOF.
func (r *rawSocket) readSome() (buf *[]byte, n int, err error) {
	r.rbuf, r.rn, r.rerr = nil, 0, nil
	if err := r.rc.Read(r.rfn); err != nil {
		return nil, 0, err
	}
	buf, n, err = r.rbuf, r.rn, r.rerr
	r.rbuf = nil
	switch {
	case err != nil:
		// As net.Conn.Read reports it, so that ReadErr reads the same
		// whatever the socket.
		err = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
	case n == 0:
		err = io.EOF
	}
	if err != nil {
		r.pool.Put(buf)
		return nil, 0, err
	}
	return buf, n, nil
}
