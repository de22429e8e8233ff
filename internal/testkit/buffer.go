package testkit

import (
	"bytes"
	"sync"
)

// Buffer is a bytes buffer that is safe for concurrent use: one goroutine
// may write (a slog handler, the copier os/exec starts for a child's
// stdout) while the test reads what was written so far. The zero value is
// an empty buffer ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns a copy of everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
