package socketio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// PacketType is a Socket.IO v5 packet type, sent as one ASCII digit.
type PacketType byte

// The packet types of Socket.IO v5.
const (
	Connect PacketType = iota
	Disconnect
	Event
	Ack
	ConnectError
	BinaryEvent
	BinaryAck
)

func (t PacketType) String() string {
	names := [...]string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"}
	if int(t) < len(names) {
		return names[t]
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// Binary reports whether packets of type t carry binary attachments.
func (t PacketType) Binary() bool { return t == BinaryEvent || t == BinaryAck }

// maxIDDigits bounds an ack id: JavaScript's safe integers have 16 digits.
const maxIDDigits = 15

// Packet is one Socket.IO packet as it is written on the wire:
//
//	<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
type Packet struct {
	Type PacketType
	// Namespace is "/" unless the packet names another one.
	Namespace string
	// ID is the ack id; HasID says whether there is one.
	ID    int64
	HasID bool
	// Attachments is how many binary messages follow a BINARY_EVENT or
	// BINARY_ACK.
	Attachments int
	// Data is the JSON payload, nil when there is none.
	Data json.RawMessage
}

// DecodePacket decodes the text of one Socket.IO packet (one Engine.IO
// message). A binary packet announcing more than maxAttachments
// attachments is refused before anything waits for them. The payload is
// checked against what the type allows (an object for CONNECT, a non-empty
// array starting with the event name for EVENT, ...). Data aliases text.
func DecodePacket(text []byte, maxAttachments int) (Packet, error) {
	bad := func(format string, args ...any) (Packet, error) {
		return Packet{}, fmt.Errorf("%w: %s", ErrPacket, fmt.Sprintf(format, args...))
	}
	if len(text) == 0 {
		return bad("empty packet")
	}
	p := Packet{Type: PacketType(text[0] - '0'), Namespace: "/"}
	if text[0] < '0' || p.Type > BinaryAck {
		return bad("unknown packet type %q", text[0])
	}
	i := 1
	if p.Type.Binary() {
		j := bytes.IndexByte(text[i:], '-')
		if j <= 0 || j > 4 {
			return bad("%v without an attachment count", p.Type)
		}
		n, err := strconv.Atoi(string(text[i : i+j]))
		if err != nil || text[i] < '0' || text[i] > '9' {
			return bad("attachment count %q", text[i:i+j])
		}
		if n > maxAttachments {
			return bad("%d attachments, more than %d", n, maxAttachments)
		}
		p.Attachments = n
		i += j + 1
	}
	if i < len(text) && text[i] == '/' {
		j := bytes.IndexByte(text[i:], ',')
		if j < 0 {
			p.Namespace = string(text[i:])
			i = len(text)
		} else {
			p.Namespace = string(text[i : i+j])
			i += j + 1
		}
	}
	start := i
	for i < len(text) && text[i] >= '0' && text[i] <= '9' {
		i++
	}
	if i > start {
		if i-start > maxIDDigits {
			return bad("ack id of %d digits", i-start)
		}
		p.ID, _ = strconv.ParseInt(string(text[start:i]), 10, 64)
		p.HasID = true
	}
	if i < len(text) {
		p.Data = text[i:]
		if !json.Valid(p.Data) {
			return bad("payload is not JSON")
		}
	}
	if err := checkPayload(p); err != nil {
		return Packet{}, err
	}
	return p, nil
}

// checkPayload checks p's payload against what its type allows.
func checkPayload(p Packet) error {
	first := byte(0)
	if d := bytes.TrimLeft(p.Data, " \t\r\n"); len(d) > 0 {
		first = d[0]
	}
	ok := true
	switch p.Type {
	case Connect:
		ok = first == 0 || first == '{'
	case Disconnect:
		ok = first == 0
	case ConnectError:
		ok = first == '{' || first == '"'
	case Event, BinaryEvent:
		ok = first == '['
		if ok {
			var head []json.RawMessage
			if json.Unmarshal(p.Data, &head) != nil || len(head) == 0 {
				return fmt.Errorf("%w: %v without an event name", ErrPacket, p.Type)
			}
			if name, isName := eventName(head[0]); !isName || reserved[name] {
				return fmt.Errorf("%w: %v with event name %s", ErrPacket, p.Type, head[0])
			}
		}
	case Ack, BinaryAck:
		ok = first == '['
	}
	if !ok {
		return fmt.Errorf("%w: %v with payload %.40q", ErrPacket, p.Type, p.Data)
	}
	return nil
}

// reserved are the event names the client may not send.
var reserved = map[string]bool{"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true, "newListener": true, "removeListener": true}

// eventName returns the event name in raw (a string, or a number as the
// JavaScript client allows).
func eventName(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

// AppendPacket appends p's text to dst.
func AppendPacket(dst []byte, p Packet) []byte {
	dst = append(dst, byte('0'+p.Type))
	if p.Type.Binary() {
		dst = strconv.AppendInt(dst, int64(p.Attachments), 10)
		dst = append(dst, '-')
	}
	if p.Namespace != "" && p.Namespace != "/" {
		dst = append(dst, p.Namespace...)
		dst = append(dst, ',')
	}
	if p.HasID {
		dst = strconv.AppendInt(dst, p.ID, 10)
	}
	return append(dst, p.Data...)
}

// placeholder stands for an attachment in a binary packet's JSON.
type placeholder struct {
	Placeholder bool `json:"_placeholder"`
	Num         int  `json:"num"`
}

// DecodeArgs decodes the JSON array of an EVENT or ACK payload into Go
// values (numbers as json.Number, objects as map[string]any), replacing
// each attachment placeholder by its attachment ([]byte).
func DecodeArgs(data json.RawMessage, attachments [][]byte) ([]any, error) {
	if len(data) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var args []any
	if err := dec.Decode(&args); err != nil {
		return nil, fmt.Errorf("%w: arguments: %v", ErrPacket, err)
	}
	used := 0
	var err error
	var fill func(v any) any
	fill = func(v any) any {
		switch v := v.(type) {
		case []any:
			for i := range v {
				v[i] = fill(v[i])
			}
		case map[string]any:
			if ph, _ := v["_placeholder"].(bool); ph {
				n, ok := v["num"].(json.Number)
				k, nerr := n.Int64()
				if !ok || nerr != nil || k < 0 || k >= int64(len(attachments)) {
					err = fmt.Errorf("%w: placeholder %v with %d attachments", ErrPacket, v["num"], len(attachments))
					return nil
				}
				used++
				return attachments[k]
			}
			for key, x := range v {
				v[key] = fill(x)
			}
		}
		return v
	}
	for i := range args {
		args[i] = fill(args[i])
	}
	if err != nil {
		return nil, err
	}
	return args, nil
}

// EncodeArgs encodes args as a JSON array, taking every []byte out as an
// attachment (found in args, []any and map[string]any at any depth) and
// leaving a placeholder in its place. json.RawMessage values are written as
// they are.
func EncodeArgs(args []any) (json.RawMessage, [][]byte, error) {
	var atts [][]byte
	var take func(v any) any
	take = func(v any) any {
		switch v := v.(type) {
		case []byte:
			atts = append(atts, v)
			return placeholder{true, len(atts) - 1}
		case []any:
			out := make([]any, len(v))
			for i, x := range v {
				out[i] = take(x)
			}
			return out
		case map[string]any:
			out := make(map[string]any, len(v))
			for k, x := range v {
				out[k] = take(x)
			}
			return out
		}
		return v
	}
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = take(a)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as JSON.stringify writes it
	if err := enc.Encode(out); err != nil {
		return nil, nil, fmt.Errorf("socketio: encoding arguments: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), atts, nil
}
