// Package aether is the Aether V3 wire format: the WS_Message_V3 envelope,
// its strict decoding, identifier rules and the error envelope. Both sides
// of floorhub that speak the protocol share it: the hub's V3 endpoint
// (server) and the WebSocket uplink (client of a central server).
//
// Decode checks syntax and schema only (types, allowed values, identifier
// syntax, to_id for direct messages). What a server then does with a valid
// envelope (filling from_id, refusing presence from clients, group policy)
// is the server's business; see docs/aether.md.
package aether

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/floorhub/floorhub/command"
)

// Version is the only protocol version spoken; the server stamps it on
// every envelope it forwards.
const Version = "3"

// Message types (msg_type).
const (
	TypeMsg       = "msg"
	TypeCmd       = "cmd"
	TypeHeartbeat = "heartbeat"
	TypePresence  = "presence"
)

// Targets (target).
const (
	TargetDirect    = "direct"
	TargetGroup     = "group"
	TargetBroadcast = "broadcast"
	TargetEcho      = "echo"
)

// Limits on fields, in bytes. Ids are also limited in ValidID.
const (
	// MaxIDLen is the longest client or group id.
	MaxIDLen = 64
	// MaxCmdLen is the longest cmd keyword.
	MaxCmdLen = 64
)

// CmdError is the cmd of the error envelope a server sends back for a
// message it refuses.
const CmdError = "ERROR"

// Sentinel errors. Every error Decode and ValidID return wraps one of them.
var (
	// ErrInvalid is wrapped by every refusal of a malformed envelope; the
	// concrete error is a *FieldError naming the field.
	ErrInvalid = errors.New("aether: invalid message")
	// ErrBadID is wrapped by errors for ids that break the id rules.
	ErrBadID = errors.New("aether: invalid id")
)

// FieldError says which field of an envelope is wrong and why. Field is
// the JSON name ("to_id"), or "" when the message as a whole is wrong (not
// JSON, not an object).
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "aether: invalid message: " + e.Reason
	}
	return "aether: invalid message: " + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Invalid returns a *FieldError for field; servers use it for their own
// policy refusals so that every refusal has the same shape.
func Invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Message is one WS_Message_V3 envelope. Empty strings and a nil Payload
// are left out of the JSON.
type Message struct {
	// Version is always "3" on the wire from a server; a client may omit it.
	Version string `json:"version,omitempty"`
	// MsgType is one of msg, cmd, heartbeat, presence.
	MsgType string `json:"msg_type"`
	// Target is one of direct, group, broadcast, echo.
	Target string `json:"target"`
	// FromID is the sender's client id; the server fills (and overrides) it.
	FromID string `json:"from_id,omitempty"`
	// ToID is the receiving client id; required for target direct only.
	ToID string `json:"to_id,omitempty"`
	// GroupID is the sender's group; the server fills it.
	GroupID string `json:"group_id,omitempty"`
	// Cmd is an action keyword ("RELOAD"); required for msg_type cmd.
	Cmd string `json:"cmd,omitempty"`
	// Msg is human-readable text.
	Msg string `json:"msg,omitempty"`
	// Payload is a JSON object (or absent).
	Payload json.RawMessage `json:"payload,omitempty"`
	// SentAt is the RFC 3339 time the server stamped; "" when not stamped.
	SentAt string `json:"sent_at,omitempty"`
}

// Encode returns m as JSON. Payload must be a JSON object (or nil): a
// payload built by the caller that is not is an error, not a broken frame.
func (m *Message) Encode() ([]byte, error) {
	if len(m.Payload) > 0 && !isObject(m.Payload) {
		return nil, Invalid("payload", "must be a JSON object")
	}
	return json.Marshal(m)
}

// Stamp sets Version and SentAt (UTC, millisecond precision like ISO 8601
// timestamps from most servers).
func (m *Message) Stamp(now time.Time) {
	m.Version = Version
	m.SentAt = now.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// fields are the envelope's JSON names, in Message order.
var fields = [...]string{"version", "msg_type", "target", "from_id", "to_id", "group_id", "cmd", "msg", "payload", "sent_at"}

// Decode parses one envelope strictly: one JSON object, only the fields of
// WS_Message_V3 (names matched exactly, each at most once), each of the
// right type; version "3" if present; msg_type and target required and
// among the allowed values; to_id required for target direct and refused
// otherwise; ids valid; cmd required for msg_type cmd; payload an object;
// sent_at an RFC 3339 time if present. JSON null counts as absent. The
// error is a *FieldError wrapping ErrInvalid.
func Decode(data []byte) (Message, error) {
	var m Message
	// encoding/json matches names without regard to case and keeps the
	// last of duplicate keys; a strict schema does neither, so the object
	// is walked key by key.
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return m, jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return m, Invalid("", "not a JSON object")
	}
	dst := [...]*string{&m.Version, &m.MsgType, &m.Target, &m.FromID, &m.ToID, &m.GroupID, &m.Cmd, &m.Msg, nil, &m.SentAt}
	var seen [len(fields)]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return m, jsonError(err)
		}
		key, _ := tok.(string) // inside an object a token here is a key
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return m, jsonError(err)
		}
		i := slices.Index(fields[:], key)
		if i < 0 {
			return m, Invalid(clip(key), "unknown field (allowed: %s)", strings.Join(fields[:], ", "))
		}
		if seen[i] {
			return m, Invalid(key, "appears more than once")
		}
		seen[i] = true
		if string(raw) == "null" {
			continue
		}
		if dst[i] == nil { // payload
			if raw[0] != '{' {
				return m, Invalid(key, "must be a JSON object, got %s", jsonKind(raw))
			}
			m.Payload = raw
			continue
		}
		if raw[0] != '"' {
			return m, Invalid(key, "must be a string, got %s", jsonKind(raw))
		}
		if err := json.Unmarshal(raw, dst[i]); err != nil {
			return m, Invalid(key, "bad string: %v", err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return m, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return m, Invalid("", "data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return m, err
	}
	return m, nil
}

// jsonKind names the JSON type of a valid raw value.
func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// Validate checks the schema rules that Decode applies to m's fields.
func (m *Message) Validate() error {
	if m.Version != "" && m.Version != Version {
		return Invalid("version", "must be %q, got %q", Version, clip(m.Version))
	}
	switch m.MsgType {
	case TypeMsg, TypeCmd, TypeHeartbeat, TypePresence:
	case "":
		return Invalid("msg_type", "required (msg, cmd, heartbeat or presence)")
	default:
		return Invalid("msg_type", "must be msg, cmd, heartbeat or presence, got %q", clip(m.MsgType))
	}
	switch m.Target {
	case TargetDirect, TargetGroup, TargetBroadcast, TargetEcho:
	case "":
		return Invalid("target", "required (direct, group, broadcast or echo)")
	default:
		return Invalid("target", "must be direct, group, broadcast or echo, got %q", clip(m.Target))
	}
	if m.Target == TargetDirect {
		if m.ToID == "" {
			return Invalid("to_id", "required for target direct")
		}
	} else if m.ToID != "" {
		return Invalid("to_id", "only allowed with target direct (target is %q)", m.Target)
	}
	for _, f := range []struct{ name, v string }{{"to_id", m.ToID}, {"from_id", m.FromID}, {"group_id", m.GroupID}} {
		if f.v == "" {
			continue
		}
		if err := ValidID(f.v); err != nil {
			return Invalid(f.name, "%s", strings.TrimPrefix(err.Error(), ErrBadID.Error()+": "))
		}
	}
	if m.MsgType == TypeCmd && m.Cmd == "" {
		return Invalid("cmd", "required for msg_type cmd")
	}
	if len(m.Cmd) > MaxCmdLen {
		return Invalid("cmd", "longer than %d bytes", MaxCmdLen)
	}
	for i := 0; i < len(m.Cmd); i++ {
		if c := m.Cmd[i]; c <= ' ' || c == 0x7f {
			return Invalid("cmd", "must not contain spaces or control characters")
		}
	}
	if m.SentAt != "" {
		if _, err := time.Parse(time.RFC3339Nano, m.SentAt); err != nil {
			return Invalid("sent_at", "not an RFC 3339 time: %q", clip(m.SentAt))
		}
	}
	if len(m.Payload) > 0 && !isObject(m.Payload) {
		return Invalid("payload", "must be a JSON object")
	}
	return nil
}

// ValidID checks a client or group id: 1 to 64 characters, each an ASCII
// letter, digit, '_' or '-'. The error wraps ErrBadID.
func ValidID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrBadID)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: longer than %d characters", ErrBadID, MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q: only letters, digits, '_' and '-' are allowed", ErrBadID, clip(id))
		}
	}
	return nil
}

// ErrorPayload is the payload of an error envelope.
type ErrorPayload struct {
	// Code is a stable, machine-readable code, e.g. "invalid_message".
	Code string `json:"code"`
	// Field names the offending field, when one is to blame.
	Field string `json:"field,omitempty"`
	// Error is the human-readable explanation (also in the envelope's msg).
	Error string `json:"error"`
}

// Error codes of error envelopes.
const (
	CodeInvalidMessage = "invalid_message" // the envelope broke the schema
	CodeForbidden      = "forbidden"       // the token does not allow it
	CodeNotConnected   = "not_connected"   // direct to a client that is not connected
	CodeRateLimited    = "rate_limited"    // over the message rate
	CodeTokenExpired   = "token_expired"   // the token expired: the connection closes
	// The codes of a failed command are package command's.
	CodeUnknownCommand = command.CodeUnknownCommand // cmd to the agent it does not run
	CodeBadArgs        = command.CodeBadArgs        // cmd arguments refused
	CodeFailed         = command.CodeFailed         // cmd failed
)

// ErrorEnvelope builds the envelope a server sends back to a client whose
// message it refused: msg_type msg, target echo, cmd "ERROR", msg the
// explanation, payload an ErrorPayload. err may be a *FieldError, whose
// field is reported.
func ErrorEnvelope(code string, err error) Message {
	p := ErrorPayload{Code: code, Error: err.Error()}
	var fe *FieldError
	if errors.As(err, &fe) {
		p.Field = fe.Field
		p.Error = fe.Error()
	}
	raw, _ := json.Marshal(p) // strings only: cannot fail
	return Message{MsgType: TypeMsg, Target: TargetEcho, Cmd: CmdError, Msg: p.Error, Payload: raw}
}

// jsonError turns an encoding/json syntax error into a *FieldError.
func jsonError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Invalid("", "truncated or empty JSON")
	}
	return Invalid("", "not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// isObject reports whether raw (valid JSON) is an object.
func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{' && json.Valid(raw)
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
