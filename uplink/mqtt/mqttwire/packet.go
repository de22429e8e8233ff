package mqttwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Control packet types (MQTT 3.1.1 §2.2.1).
const (
	typeConnect     = 1
	typeConnack     = 2
	typePublish     = 3
	typePuback      = 4
	typePubrec      = 5
	typePubrel      = 6
	typePubcomp     = 7
	typeSubscribe   = 8
	typeSuback      = 9
	typeUnsubscribe = 10
	typeUnsuback    = 11
	typePingreq     = 12
	typePingresp    = 13
	typeDisconnect  = 14
)

// maxRemaining is the largest Remaining Length four bytes encode (§2.2.3).
const maxRemaining = 268_435_455

// ErrMalformed is wrapped by every error about bytes from the broker that
// are not a valid MQTT 3.1.1 packet, or not one a client may receive.
var ErrMalformed = errors.New("mqttwire: malformed packet")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// appendVarint appends n as a Remaining Length: seven bits a byte, least
// significant group first, the top bit saying another byte follows
// (§2.2.3). n must be in [0, maxRemaining].
func appendVarint(b []byte, n int) []byte {
	for {
		d := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(b, d)
		}
		b = append(b, d|0x80)
	}
}

// readVarint reads a Remaining Length; a fifth byte is malformed (§2.2.3).
func readVarint(r io.ByteReader) (int, error) {
	n := 0
	for i := 0; i < 4; i++ {
		d, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(d&0x7f) << (7 * i)
		if d&0x80 == 0 {
			return n, nil
		}
	}
	return 0, malformed("remaining length longer than 4 bytes")
}

// appendString appends a UTF-8 string with its two-byte length (§1.5.3).
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendBytes appends binary data with its two-byte length (§3.1.3.3).
func appendBytes(b, p []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	return append(b, p...)
}

// checkString reports whether s can be an MQTT string: at most 65535
// bytes of UTF-8 without U+0000 (§1.5.3).
func checkString(what, s string) error {
	switch {
	case len(s) > 0xffff:
		return fmt.Errorf("mqttwire: %s is %d bytes; at most 65535", what, len(s))
	case !utf8.ValidString(s):
		return fmt.Errorf("mqttwire: %s %q is not UTF-8", what, s)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("mqttwire: %s %q contains U+0000", what, s)
	}
	return nil
}

// checkTopic reports whether s can be the topic of a PUBLISH: a non-empty
// string without wildcards (§4.7.3, §3.3.2.1).
func checkTopic(s string) error {
	if s == "" {
		return errors.New("mqttwire: empty topic")
	}
	if strings.ContainsAny(s, "+#") {
		return fmt.Errorf("mqttwire: topic %q contains a wildcard", s)
	}
	return checkString("topic", s)
}

// checkFilter reports whether s is a valid topic filter: '#' only as the
// last level and alone in it, '+' alone in its level (§4.7.1).
func checkFilter(s string) error {
	if s == "" {
		return errors.New("mqttwire: empty topic filter")
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("mqttwire: topic filter %q: '#' must be the whole last level", s)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("mqttwire: topic filter %q: '+' must be a whole level", s)
		}
	}
	return checkString("topic filter", s)
}

// Match reports whether topic matches filter (§4.7): '+' matches one
// level, a last '#' the parent level and any below it, and a wildcard in
// the first level does not match a topic that starts with '$' (§4.7.2).
func Match(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fmore || !tmore {
			// "a/#" matches "a" too: the parent level.
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// connectPacket is the content of a CONNECT (§3.1) as this client sends
// it: protocol level 4, clean session always.
type connectPacket struct {
	clientID           string
	username, password string
	hasUser, hasPass   bool
	keepAlive          uint16 // seconds
	will               *Message
}

// appendConnect appends the CONNECT (§3.1).
func appendConnect(b []byte, p *connectPacket) []byte {
	var body []byte
	body = appendString(body, "MQTT")
	body = append(body, 4) // protocol level 3.1.1 (§3.1.2.2)
	flags := byte(0x02)    // clean session (§3.1.2.4)
	if p.will != nil {
		flags |= 0x04 | p.will.QoS<<3
		if p.will.Retained {
			flags |= 0x20
		}
	}
	if p.hasPass {
		flags |= 0x40
	}
	if p.hasUser {
		flags |= 0x80
	}
	body = append(body, flags)
	body = binary.BigEndian.AppendUint16(body, p.keepAlive)
	body = appendString(body, p.clientID)
	if p.will != nil {
		body = appendString(body, p.will.Topic)
		body = appendBytes(body, p.will.Payload)
	}
	if p.hasUser {
		body = appendString(body, p.username)
	}
	if p.hasPass {
		body = appendString(body, p.password)
	}
	b = append(b, typeConnect<<4)
	b = appendVarint(b, len(body))
	return append(b, body...)
}

// appendPublishHeader appends a PUBLISH's fixed and variable header, for
// a payload of n bytes that follows it on the wire (§3.3). id is used only
// with qos 1.
func appendPublishHeader(b []byte, topic string, qos byte, retain bool, id uint16, n int) []byte {
	h := byte(typePublish<<4) | qos<<1
	if retain {
		h |= 1
	}
	rl := 2 + len(topic) + n
	if qos > 0 {
		rl += 2
	}
	b = append(b, h)
	b = appendVarint(b, rl)
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return b
}

// appendPuback appends the PUBACK of packet id (§3.4).
func appendPuback(b []byte, id uint16) []byte {
	return binary.BigEndian.AppendUint16(append(b, typePuback<<4, 2), id)
}

// Subscription is one topic filter of a SUBSCRIBE and the most QoS asked
// for on it (0 or 1).
type Subscription struct {
	Filter string
	QoS    byte
}

// appendSubscribe appends a SUBSCRIBE (§3.8); its fixed header flags are
// 0010 (§3.8.1).
func appendSubscribe(b []byte, id uint16, subs []Subscription) []byte {
	rl := 2
	for _, s := range subs {
		rl += 2 + len(s.Filter) + 1
	}
	b = append(b, typeSubscribe<<4|0x02)
	b = appendVarint(b, rl)
	b = binary.BigEndian.AppendUint16(b, id)
	for _, s := range subs {
		b = appendString(b, s.Filter)
		b = append(b, s.QoS)
	}
	return b
}

// The packets without a variable header (§3.12, §3.14).
var (
	pingreqPacket    = []byte{typePingreq << 4, 0}
	disconnectPacket = []byte{typeDisconnect << 4, 0}
)

// packet is one packet read from the broker: its type, the flags of its
// fixed header and the rest.
type packet struct {
	typ, flags byte
	body       []byte
	// skipped is the size of a PUBLISH's payload over the reader's
	// limit, which was read past: body holds its topic and packet id.
	skipped int
}

// reader reads packets from the broker, refusing any over max bytes.
type reader struct {
	r       *bufio.Reader
	max     int
	scratch [4]byte
}

// next reads one packet. The body of a PUBLISH is a new slice (its payload
// goes to a handler); any other body is valid until the next call. A
// packet over the limit is an error before its body is read, except a
// PUBLISH: its topic and packet id are read and its payload is skipped
// (packet.skipped), since the broker would deliver a retained one again
// on every connection, which would each end on it.
func (r *reader) next() (packet, error) {
	h, err := r.r.ReadByte()
	if err != nil {
		return packet{}, err
	}
	n, err := readVarint(r.r)
	if err != nil {
		return packet{}, unexpectedEOF(err)
	}
	p := packet{typ: h >> 4, flags: h & 0x0f}
	if total := 1 + n; total > r.max {
		if p.typ == typePublish {
			return r.skipPublish(p, n)
		}
		return p, malformed("a packet of type %d with %d bytes is over the %d byte limit", p.typ, n, r.max)
	}
	if p.typ != typePublish && n <= len(r.scratch) {
		p.body = r.scratch[:n]
	} else {
		p.body = make([]byte, n)
	}
	if _, err := io.ReadFull(r.r, p.body); err != nil {
		return p, unexpectedEOF(err)
	}
	return p, nil
}

// skipPublish reads the topic and packet id of a PUBLISH of n bytes over
// the limit, and reads past its payload without keeping it.
func (r *reader) skipPublish(p packet, n int) (packet, error) {
	if _, err := io.ReadFull(r.r, r.scratch[:2]); err != nil {
		return p, unexpectedEOF(err)
	}
	head := 2 + int(binary.BigEndian.Uint16(r.scratch[:2]))
	if p.flags>>1&3 > 0 {
		head += 2 // the packet id
	}
	if head > n || 1+head > r.max {
		return p, malformed("a PUBLISH of %d bytes with a topic of %d, over the %d byte limit", n, head-2, r.max)
	}
	p.body = make([]byte, head)
	copy(p.body, r.scratch[:2])
	if _, err := io.ReadFull(r.r, p.body[2:]); err != nil {
		return p, unexpectedEOF(err)
	}
	p.skipped = n - head
	if _, err := io.CopyN(io.Discard, r.r, int64(p.skipped)); err != nil {
		return p, unexpectedEOF(err)
	}
	return p, nil
}

// unexpectedEOF turns EOF within a packet into io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkFlags checks the reserved flags of a packet other than PUBLISH
// (§2.2.2).
func checkFlags(p packet) error {
	want := byte(0)
	if p.typ == typePubrel || p.typ == typeSubscribe || p.typ == typeUnsubscribe {
		want = 2
	}
	if p.flags != want {
		return malformed("packet type %d with flags %#x", p.typ, p.flags)
	}
	return nil
}

// parseConnack returns a CONNACK's session present flag and return code
// (§3.2.2).
func parseConnack(p packet) (sessionPresent bool, code byte, err error) {
	if p.typ != typeConnack {
		return false, 0, malformed("packet type %d where CONNACK was due (§3.2)", p.typ)
	}
	if err := checkFlags(p); err != nil {
		return false, 0, err
	}
	if len(p.body) != 2 || p.body[0]&^1 != 0 {
		return false, 0, malformed("CONNACK % x", p.body)
	}
	return p.body[0] == 1, p.body[1], nil
}

// parseID returns the packet id of a PUBACK or other two-byte packet.
func parseID(p packet) (uint16, error) {
	if err := checkFlags(p); err != nil {
		return 0, err
	}
	if len(p.body) != 2 {
		return 0, malformed("packet type %d with %d bytes; want 2", p.typ, len(p.body))
	}
	id := binary.BigEndian.Uint16(p.body)
	if id == 0 {
		return 0, malformed("packet type %d with packet id 0 (§2.3.1)", p.typ)
	}
	return id, nil
}

// parseSuback returns a SUBACK's packet id and return codes (§3.9).
func parseSuback(p packet) (uint16, []byte, error) {
	if err := checkFlags(p); err != nil {
		return 0, nil, err
	}
	if len(p.body) < 3 {
		return 0, nil, malformed("SUBACK of %d bytes", len(p.body))
	}
	id := binary.BigEndian.Uint16(p.body)
	if id == 0 {
		return 0, nil, malformed("SUBACK with packet id 0 (§2.3.1)")
	}
	codes := p.body[2:]
	for _, c := range codes {
		if c > 2 && c != 0x80 {
			return 0, nil, malformed("SUBACK return code %#x (§3.9.3)", c)
		}
	}
	return id, codes, nil
}

// parsePublish returns an incoming PUBLISH and its packet id (0 at QoS 0)
// (§3.3). A client subscribes with QoS 1 at most, so QoS 2 is refused.
func parsePublish(p packet) (Message, uint16, error) {
	m := Message{QoS: p.flags >> 1 & 3, Retained: p.flags&1 != 0, Dup: p.flags&8 != 0}
	switch {
	case m.QoS > 1:
		return m, 0, malformed("PUBLISH at QoS %d; this client subscribes at QoS 1 at most", m.QoS)
	case m.QoS == 0 && m.Dup:
		return m, 0, malformed("PUBLISH at QoS 0 with DUP set (§3.3.1.1)")
	case len(p.body) < 2:
		return m, 0, malformed("PUBLISH of %d bytes", len(p.body))
	}
	n := int(binary.BigEndian.Uint16(p.body))
	rest := p.body[2:]
	if n > len(rest) {
		return m, 0, malformed("PUBLISH topic of %d bytes in %d", n, len(rest))
	}
	m.Topic, rest = string(rest[:n]), rest[n:]
	if err := checkTopic(m.Topic); err != nil {
		return m, 0, fmt.Errorf("%w: PUBLISH: %v", ErrMalformed, err)
	}
	var id uint16
	if m.QoS > 0 {
		if len(rest) < 2 {
			return m, 0, malformed("PUBLISH at QoS 1 without a packet id")
		}
		id, rest = binary.BigEndian.Uint16(rest), rest[2:]
		if id == 0 {
			return m, 0, malformed("PUBLISH with packet id 0 (§2.3.1)")
		}
	}
	m.Payload = rest
	m.Skipped = p.skipped
	return m, id, nil
}
