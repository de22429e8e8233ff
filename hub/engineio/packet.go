package engineio

import (
	"bytes"
	"encoding/base64"
	"fmt"

	"github.com/floorhub/floorhub/hub/wsconn"
)

// PacketType is an Engine.IO v4 packet type, sent as one ASCII digit.
type PacketType byte

// The packet types of Engine.IO v4.
const (
	Open    PacketType = '0'
	Close   PacketType = '1'
	Ping    PacketType = '2'
	Pong    PacketType = '3'
	Msg     PacketType = '4'
	Upgrade PacketType = '5'
	Noop    PacketType = '6'
)

// separator joins the packets of an HTTP long-polling payload (the ASCII
// record separator, which cannot occur in JSON or base64 text).
const separator = 0x1e

// Packet is one Engine.IO packet. Binary is only meaningful for Msg: its
// Data is then raw bytes (a WebSocket binary frame, or "b"+base64 in a
// long-polling payload) rather than text.
type Packet struct {
	Type   PacketType
	Data   []byte
	Binary bool
}

// DecodePacket decodes one text packet: a WebSocket text frame, or one
// element of a long-polling payload that does not start with "b". Data
// aliases text.
func DecodePacket(text []byte) (Packet, error) {
	if len(text) == 0 {
		return Packet{}, fmt.Errorf("%w: empty packet", ErrPacket)
	}
	t := PacketType(text[0])
	if t < Open || t > Noop {
		return Packet{}, fmt.Errorf("%w: unknown packet type %q", ErrPacket, text[0])
	}
	return Packet{Type: t, Data: text[1:]}, nil
}

// DecodePayload decodes a long-polling payload: packets joined by 0x1e,
// binary messages as "b" followed by standard base64. Text data aliases
// body. At most maxPackets packets are accepted (0: no limit).
func DecodePayload(body []byte, maxPackets int) ([]Packet, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty payload", ErrPacket)
	}
	n := bytes.Count(body, []byte{separator}) + 1
	if maxPackets > 0 && n > maxPackets {
		return nil, fmt.Errorf("%w: %d packets in one payload, more than %d", ErrPacket, n, maxPackets)
	}
	pkts := make([]Packet, 0, n)
	for len(pkts) < n {
		el := body
		if i := bytes.IndexByte(body, separator); i >= 0 {
			el, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(el) > 0 && el[0] == 'b' {
			raw := make([]byte, base64.StdEncoding.DecodedLen(len(el)-1))
			k, err := base64.StdEncoding.Decode(raw, el[1:])
			if err != nil {
				return nil, fmt.Errorf("%w: binary packet %d: %v", ErrPacket, len(pkts), err)
			}
			pkts = append(pkts, Packet{Type: Msg, Data: raw[:k], Binary: true})
			continue
		}
		p, err := DecodePacket(el)
		if err != nil {
			return nil, fmt.Errorf("packet %d: %w", len(pkts), err)
		}
		pkts = append(pkts, p)
	}
	return pkts, nil
}

// AppendPayload appends pkts to dst as one long-polling payload.
func AppendPayload(dst []byte, pkts []Packet) []byte {
	for i, p := range pkts {
		if i > 0 {
			dst = append(dst, separator)
		}
		if p.Binary {
			dst = append(dst, 'b')
			dst = base64.StdEncoding.AppendEncode(dst, p.Data)
			continue
		}
		dst = append(dst, byte(p.Type))
		dst = append(dst, p.Data...)
	}
	return dst
}

// frame is p as a WebSocket Conn sends it: binary messages as binary
// frames, the rest as text.
func (p *Packet) frame() wsconn.Message {
	if p.Binary {
		return wsconn.Message{Data: p.Data, Binary: true}
	}
	return wsconn.Message{Data: append([]byte{byte(p.Type)}, p.Data...)}
}
