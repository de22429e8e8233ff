//go:build !unix

package wsconn

import "net"

// directWriter is a no-op where raw socket writes are not wired: every
// message goes through the writer goroutine.
type directWriter struct{}

func newDirectWriter(net.Conn) *directWriter { return nil }

func (*directWriter) tryWrite([]byte) int { return 0 }
