//go:build !unix

package wsconn

import (
	"io"
	"net"
	"sync"
)

// rawSocket is not wired where raw socket calls are not: every connection
// is read and written through net.Conn.
type rawSocket struct{}

func newRawSocket(net.Conn, *sync.Pool) *rawSocket { return nil }

func (*rawSocket) tryWrite([]byte) int { return 0 }

func (*rawSocket) readSome() (*[]byte, int, error) { return nil, 0, io.EOF }
