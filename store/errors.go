package store

import "errors"

// Sentinel errors. Every error the store returns wraps one of these or an
// error from the operating system, and its message starts with "store: ".
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store: closed")
	// ErrTimeout is returned by Open when another process holds the file
	// for longer than Options.OpenTimeout.
	ErrTimeout = errors.New("store: timed out opening the database (is another agent running?)")
	// ErrInvalid wraps bad input: a record or option the store refuses.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrCorrupt wraps damage found in the file. Open handles a corrupt file
	// itself (see Open); other methods report it and skip what they cannot read.
	ErrCorrupt = errors.New("store: corrupt database")
)
