package aether

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Commands and replies between a V3 peer and a floorhub agent. Both the
// hub's endpoint and the WebSocket uplink use these, so the agent answers
// the same way on either side (docs/aether.md).
const (
	// CmdResult is the cmd of the reply to a command.
	CmdResult = "RESULT"
	// CmdAck is the command a central server sends to acknowledge records:
	// payload {"seq": N} means it holds every seq <= N it was sent.
	CmdAck = "ACK"
	// CmdHello is the cmd of the message the uplink sends on every connect.
	CmdHello = "HELLO"
	// CmdRecords is the cmd of a message carrying stored records.
	CmdRecords = "RECORDS"
	// CmdLive is the cmd of a preview: an alert or device status sent at
	// once while RECORDS drain a backlog. It is not acknowledged; the same
	// record comes again, in order, in RECORDS.
	CmdLive = "LIVE"
)

// ResultPayload is the payload of a RESULT reply.
type ResultPayload struct {
	// Cmd is the command's name as it was received.
	Cmd string `json:"cmd"`
	// RequestID is the request's payload.request_id, if it had one.
	RequestID json.RawMessage `json:"request_id,omitempty"`
	// OK tells success (Result set) from failure (Error and Message set).
	OK     bool `json:"ok"`
	Result any  `json:"result,omitempty"`
	// Error is a code: unknown_command, bad_args or failed.
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

// CommandName is the name a Commander is called with for a cmd keyword:
// lower case, so that "PING" (the seed's style) and "ping" (the MQTT
// uplink's) are the same command.
func CommandName(cmd string) string { return strings.ToLower(cmd) }

// CommandArgs returns the arguments of a cmd envelope for a Commander: its
// payload without request_id (which is for correlating the reply only),
// and the request_id itself. A payload that is only a request_id gives
// empty args.
func CommandArgs(m *Message) (args, requestID json.RawMessage) {
	if len(m.Payload) == 0 || !bytes.Contains(m.Payload, []byte(`"request_id"`)) {
		return m.Payload, nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(m.Payload, &fields) != nil {
		return m.Payload, nil
	}
	requestID, ok := fields["request_id"]
	if !ok {
		return m.Payload, nil
	}
	delete(fields, "request_id")
	if len(fields) == 0 {
		return nil, requestID
	}
	args, _ = json.Marshal(fields) // raw values re-encoded: cannot fail
	return args, requestID
}

// Reply builds the RESULT envelope that answers req: direct to the sender
// (or to the group if the sender is unknown). On success err is nil and
// result is encoded as payload.result; on failure code is one of the
// Code* constants and err's text is the message. The caller stamps and
// fills from_id.
func Reply(req *Message, requestID json.RawMessage, result any, code string, err error) Message {
	p := ResultPayload{Cmd: req.Cmd, RequestID: requestID, OK: err == nil, Result: result}
	if err != nil {
		p.Result, p.Error, p.Message = nil, code, err.Error()
	}
	raw, merr := json.Marshal(p)
	if merr != nil {
		// A result that JSON cannot hold is the command's failure.
		p = ResultPayload{Cmd: req.Cmd, RequestID: requestID, Error: CodeFailed, Message: "aether: result not encodable: " + merr.Error()}
		raw, _ = json.Marshal(p)
	}
	m := Message{MsgType: TypeMsg, Target: TargetDirect, ToID: req.FromID, Cmd: CmdResult, Msg: req.Cmd, Payload: raw}
	if req.FromID == "" {
		m.Target, m.ToID = TargetGroup, ""
	}
	return m
}
