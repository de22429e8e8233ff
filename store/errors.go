package store

import (
	"errors"
	"fmt"
)

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
	// ErrNotFound wraps a chat that does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrNotMember wraps a user acting in a chat they are not a member of.
	ErrNotMember = errors.New("store: not a member of the chat")
	// ErrChatFull is returned by CreateChat past Options.ChatMaxChats.
	ErrChatFull = errors.New("store: too many chats")
)

// FieldError is an Options field that Validate refuses. Field is the Go
// name of the field; it wraps ErrInvalid.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	return "store: invalid argument: Options." + e.Field + " " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func invalidOption(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
