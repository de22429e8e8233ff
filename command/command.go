// Package command is the vocabulary of the commands a floorhub gateway
// runs for the central side and for operators: their names, how they are
// run (Commander), and how their errors are told apart (sentinel errors
// and the codes the wire protocols carry).
//
// The agent implements Commander once. The hub's V3 endpoint and the
// uplinks (MQTT, WebSocket) receive commands and run them through it; they
// share this package instead of importing one another.
package command

import (
	"context"
	"encoding/json"
	"errors"
)

// Command names the agent runs. A transport passes the name as it was
// received, lower-cased where its protocol says names are case-insensitive
// (see aether.CommandName).
const (
	// Ping answers {"pong": true, "time", "gateway_id"}; it takes no
	// arguments.
	Ping = "ping"
	// ReadNow reads one device at once: {"device_id": 1}. The result is
	// the record of that read.
	ReadNow = "read_now"
	// SetInterval changes a device's read interval: {"device_id": 1,
	// "interval": "10s"} (a duration string or seconds, 100ms to 24h). The
	// change lives in memory; a restart reads the configured interval.
	SetInterval = "set_interval"
	// Status answers the devices' and the system's status; it takes no
	// arguments.
	Status = "status"
	// ChatPost posts into a floor chat as a named central user: {"chat_id":
	// 1, "user": "control room", "message": "..."}. The result is the
	// message as the chat's members receive it (response_message).
	ChatPost = "chat_post"
	// AckAlert acknowledges an active alert: {"alert_id": 12, "user":
	// "alice", "note": "fan replaced"} (note optional, at most MaxAckNote
	// bytes; user at most MaxAckUser bytes). The answer is the
	// acknowledgement: alert_id, acknowledged_by, acknowledged_at, note,
	// seq (the alert_ack record's).
	AckAlert = "ack_alert"
)

// Bounds of an acknowledgement's free text, in bytes of UTF-8.
const (
	MaxAckNote = 500
	MaxAckUser = 64
)

// Sentinel errors. A Commander wraps them (fmt.Errorf("%w: ...")) so that
// every transport answers with the right code (ErrorCode).
var (
	// ErrUnknownCommand is returned (wrapped) for a name nobody runs.
	ErrUnknownCommand = errors.New("command: unknown command")
	// ErrBadArgs is returned (wrapped) for arguments that fail validation.
	ErrBadArgs = errors.New("command: bad arguments")
	// ErrUnknownAlert: ack_alert names no alert the gateway has stored.
	ErrUnknownAlert = errors.New("command: unknown alert")
	// ErrAlertCleared: ack_alert names an alert that is no longer active.
	ErrAlertCleared = errors.New("command: alert already cleared")
	// ErrAlreadyAcknowledged: ack_alert names an alert acknowledged before.
	ErrAlreadyAcknowledged = errors.New("command: alert already acknowledged")
	// ErrNoteTooLong: ack_alert's note is longer than MaxAckNote.
	ErrNoteTooLong = errors.New("command: note too long")
)

// Error codes: what the wire protocols (the MQTT reply's "error", the V3
// RESULT payload's "error") carry for a failed command.
const (
	// CodeUnknownCommand: no one runs a command of that name.
	CodeUnknownCommand = "unknown_command"
	// CodeBadArgs: the arguments were refused; the message says why.
	CodeBadArgs = "bad_args"
	// CodeFailed: the command ran and failed.
	CodeFailed = "failed"
	// CodeUnknownAlert, CodeAlertCleared, CodeAlreadyAcknowledged and
	// CodeNoteTooLong: ack_alert refused (the sentinels of the same names).
	CodeUnknownAlert        = "unknown_alert"
	CodeAlertCleared        = "alert_cleared"
	CodeAlreadyAcknowledged = "already_acknowledged"
	CodeNoteTooLong         = "note_too_long"
)

// Commander runs one command. The agent implements it for every transport.
//
// name is one of the names above (or any other: the answer is then an
// error wrapping ErrUnknownCommand); args is the raw JSON object of the
// arguments, possibly empty. An error for malformed arguments wraps
// ErrBadArgs. The result is encoded with encoding/json. Command must return
// when ctx ends.
type Commander interface {
	Command(ctx context.Context, name string, args json.RawMessage) (any, error)
}

// ErrorCode is the code a transport sends for err, an error a Commander
// returned: the code of the sentinel it wraps or, for anything else,
// CodeFailed.
func ErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrUnknownCommand):
		return CodeUnknownCommand
	case errors.Is(err, ErrUnknownAlert):
		return CodeUnknownAlert
	case errors.Is(err, ErrAlertCleared):
		return CodeAlertCleared
	case errors.Is(err, ErrAlreadyAcknowledged):
		return CodeAlreadyAcknowledged
	case errors.Is(err, ErrNoteTooLong):
		return CodeNoteTooLong
	case errors.Is(err, ErrBadArgs):
		return CodeBadArgs
	}
	return CodeFailed
}
