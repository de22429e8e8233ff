package mqttwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestVarint(t *testing.T) {
	// The boundaries of §2.2.3's table.
	for _, c := range []struct {
		n    int
		wire []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{16_383, []byte{0xff, 0x7f}},
		{16_384, []byte{0x80, 0x80, 0x01}},
		{2_097_151, []byte{0xff, 0xff, 0x7f}},
		{2_097_152, []byte{0x80, 0x80, 0x80, 0x01}},
		{maxRemaining, []byte{0xff, 0xff, 0xff, 0x7f}},
	} {
		if got := appendVarint(nil, c.n); !bytes.Equal(got, c.wire) {
			t.Errorf("appendVarint(%d) = % x; want % x", c.n, got, c.wire)
		}
		n, err := readVarint(bytes.NewReader(c.wire))
		if err != nil || n != c.n {
			t.Errorf("readVarint(% x) = %d, %v; want %d", c.wire, n, err, c.n)
		}
	}
	for _, c := range []struct {
		wire []byte
		want error
	}{
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x01}, ErrMalformed},
		{[]byte{0x80}, io.EOF},
		{nil, io.EOF},
	} {
		if _, err := readVarint(bytes.NewReader(c.wire)); !errors.Is(err, c.want) {
			t.Errorf("readVarint(% x) error %v; want %v", c.wire, err, c.want)
		}
	}
}

func TestEncode(t *testing.T) {
	for _, c := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"string", appendString(nil, "a/b"), []byte{0, 3, 'a', '/', 'b'}},
		{"empty string", appendString(nil, ""), []byte{0, 0}},
		{"connect minimal", appendConnect(nil, &connectPacket{clientID: "c", keepAlive: 30}),
			[]byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, 1, 'c'}},
		{"connect will, user, password", appendConnect(nil, &connectPacket{clientID: "c", keepAlive: 60,
			username: "u", password: "p", hasUser: true, hasPass: true,
			will: &Message{Topic: "w", Payload: []byte{9}, QoS: 1, Retained: true}}),
			[]byte{0x10, 25, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02, 0, 60,
				0, 1, 'c', 0, 1, 'w', 0, 1, 9, 0, 1, 'u', 0, 1, 'p'}},
		{"publish qos 1 retain", append(appendPublishHeader(nil, "t", 1, true, 0x0102, 2), 'h', 'i'),
			[]byte{0x33, 7, 0, 1, 't', 1, 2, 'h', 'i'}},
		{"publish qos 0", appendPublishHeader(nil, "t", 0, false, 7, 0), []byte{0x30, 3, 0, 1, 't'}},
		{"puback", appendPuback(nil, 0xabcd), []byte{0x40, 2, 0xab, 0xcd}},
		{"subscribe", appendSubscribe(nil, 5, []Subscription{{"a/+", 1}, {"#", 0}}),
			[]byte{0x82, 12, 0, 5, 0, 3, 'a', '/', '+', 1, 0, 1, '#', 0}},
		{"pingreq", pingreqPacket, []byte{0xc0, 0}},
		{"disconnect", disconnectPacket, []byte{0xe0, 0}},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s:\n got % x\nwant % x", c.name, c.got, c.want)
		}
	}
	// A large payload: the Remaining Length takes three bytes.
	h := appendPublishHeader(nil, "t", 1, false, 1, 20000)
	if n, err := readVarint(bytes.NewReader(h[1:])); err != nil || n != 2+1+2+20000 {
		t.Errorf("remaining length %d, %v", n, err)
	}
}

func read(wire []byte, max int) (packet, error) {
	r := &reader{r: bufio.NewReader(bytes.NewReader(wire)), max: max}
	return r.next()
}

func TestParse(t *testing.T) {
	p, err := read([]byte{0x20, 2, 0, 5}, 100)
	if sp, code, err2 := parseConnack(p); err != nil || err2 != nil || sp || code != 5 {
		t.Errorf("CONNACK: %v %v %v %d", err, err2, sp, code)
	}
	p, _ = read([]byte{0x40, 2, 0x12, 0x34}, 100)
	if id, err := parseID(p); err != nil || id != 0x1234 {
		t.Errorf("PUBACK: %d %v", id, err)
	}
	p, _ = read([]byte{0x90, 4, 0, 9, 1, 0x80}, 100)
	if id, codes, err := parseSuback(p); err != nil || id != 9 || !bytes.Equal(codes, []byte{1, 0x80}) {
		t.Errorf("SUBACK: %d % x %v", id, codes, err)
	}
	p, _ = read([]byte{0x3b, 8, 0, 3, 'a', '/', 'b', 0, 7, 'x'}, 100)
	m, id, err := parsePublish(p)
	if err != nil || id != 7 || m.Topic != "a/b" || string(m.Payload) != "x" || m.QoS != 1 || !m.Retained || !m.Dup {
		t.Errorf("PUBLISH: %+v %d %v", m, id, err)
	}
	p, _ = read([]byte{0x30, 3, 0, 1, 'a'}, 100)
	if m, id, err := parsePublish(p); err != nil || id != 0 || m.Topic != "a" || len(m.Payload) != 0 || m.QoS != 0 {
		t.Errorf("PUBLISH QoS 0, empty payload: %+v %d %v", m, id, err)
	}

	for _, c := range []struct {
		name string
		wire []byte
		do   func(packet) error
	}{
		{"CONNACK long", []byte{0x20, 3, 0, 0, 0}, func(p packet) error { _, _, err := parseConnack(p); return err }},
		{"CONNACK reserved flag", []byte{0x20, 2, 2, 0}, func(p packet) error { _, _, err := parseConnack(p); return err }},
		{"CONNACK header flags", []byte{0x21, 2, 0, 0}, func(p packet) error { _, _, err := parseConnack(p); return err }},
		{"not a CONNACK", []byte{0x40, 2, 0, 1}, func(p packet) error { _, _, err := parseConnack(p); return err }},
		{"PUBACK id 0", []byte{0x40, 2, 0, 0}, func(p packet) error { _, err := parseID(p); return err }},
		{"PUBACK short", []byte{0x40, 1, 0}, func(p packet) error { _, err := parseID(p); return err }},
		{"SUBACK bad code", []byte{0x90, 3, 0, 1, 3}, func(p packet) error { _, _, err := parseSuback(p); return err }},
		{"SUBACK no code", []byte{0x90, 2, 0, 1}, func(p packet) error { _, _, err := parseSuback(p); return err }},
		{"PUBLISH QoS 2", []byte{0x34, 5, 0, 1, 'a', 0, 1}, func(p packet) error { _, _, err := parsePublish(p); return err }},
		{"PUBLISH QoS 3", []byte{0x36, 5, 0, 1, 'a', 0, 1}, func(p packet) error { _, _, err := parsePublish(p); return err }},
		{"PUBLISH DUP at QoS 0", []byte{0x38, 3, 0, 1, 'a'}, func(p packet) error { _, _, err := parsePublish(p); return err }},
		{"PUBLISH topic overrun", []byte{0x30, 3, 0, 9, 'a'}, func(p packet) error { _, _, err := parsePublish(p); return err }},
		{"PUBLISH empty topic", []byte{0x30, 2, 0, 0}, func(p packet) error { _, _, err := parsePublish(p); return err }},
		{"PUBLISH wildcard topic", []byte{0x30, 3, 0, 1, '#'}, func(p packet) error { _, _, err := parsePublish(p); return err }},
		{"PUBLISH topic not UTF-8", []byte{0x30, 3, 0, 1, 0xff}, func(p packet) error { _, _, err := parsePublish(p); return err }},
		{"PUBLISH topic with NUL", []byte{0x30, 3, 0, 1, 0}, func(p packet) error { _, _, err := parsePublish(p); return err }},
		{"PUBLISH QoS 1 no id", []byte{0x32, 4, 0, 1, 'a', 0}, func(p packet) error { _, _, err := parsePublish(p); return err }},
		{"PUBLISH id 0", []byte{0x32, 5, 0, 1, 'a', 0, 0}, func(p packet) error { _, _, err := parsePublish(p); return err }},
	} {
		p, err := read(c.wire, 100)
		if err != nil {
			t.Errorf("%s: read: %v", c.name, err)
			continue
		}
		if err := c.do(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v; want ErrMalformed", c.name, err)
		}
	}
}

func TestReaderLimitsAndTruncation(t *testing.T) {
	// Over the limit: refused from the header, before any body is read
	// (the claimed 200 MB are never allocated).
	if _, err := read([]byte{0x90, 0x80, 0x80, 0x80, 0x60}, 1<<20); !errors.Is(err, ErrMalformed) ||
		!strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized: %v", err)
	}
	// A PUBLISH over the limit: its topic and id are read, its payload
	// read past (not kept), and the next packet is read as usual.
	pub := append(appendPublishHeader(nil, "a/b", 1, false, 7, 300), make([]byte, 300)...)
	r := &reader{r: bufio.NewReader(bytes.NewReader(append(pub, 0xd0, 0))), max: 100}
	p, err := r.next()
	if m, id, err2 := parsePublish(p); err != nil || err2 != nil || m.Topic != "a/b" || id != 7 || len(m.Payload) != 0 || m.Skipped != 300 {
		t.Errorf("oversized PUBLISH: %+v id %d, %v %v", m, id, err, err2)
	}
	if p, err := r.next(); err != nil || p.typ != typePingresp {
		t.Errorf("after it: %+v %v", p, err)
	}
	if _, err := read(pub[:200], 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("oversized PUBLISH cut short: %v", err)
	}
	if _, err := read([]byte{0x30, 10, 0, 1}, 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated body: %v", err)
	}
	if _, err := read([]byte{0x30}, 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated header: %v", err)
	}
	if _, err := read(nil, 100); err != io.EOF {
		t.Errorf("nothing: %v; want io.EOF", err)
	}
}

func TestChecks(t *testing.T) {
	for _, c := range []struct {
		s           string
		topic, filt bool // valid as a topic, as a filter
	}{
		{"a/b", true, true},
		{"a//b", true, true},
		{"/", true, true},
		{"", false, false},
		{"a/+/b", false, true},
		{"a/#", false, true},
		{"#", false, true},
		{"+", false, true},
		{"a/b#", false, false},
		{"a/#/b", false, false},
		{"a+/b", false, false},
		{"a\x00b", false, false},
		{"\xff", false, false},
		{strings.Repeat("a", 65536), false, false},
	} {
		if err := checkTopic(c.s); (err == nil) != c.topic {
			t.Errorf("checkTopic(%.20q) = %v", c.s, err)
		}
		if err := checkFilter(c.s); (err == nil) != c.filt {
			t.Errorf("checkFilter(%.20q) = %v", c.s, err)
		}
	}
}

func TestMatch(t *testing.T) {
	// The examples of §4.7.1 and §4.7.2.
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},
		{"#", "a/b/c", true},
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+/c", "a/x/c", true},
		{"#", "$SYS/x", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"floorhub/gw1/cmd/+", "floorhub/gw1/cmd/ping", true},
		{"spBv1.0/g/DCMD/n/+", "spBv1.0/g/DCMD/n/dev", true},
		{"spBv1.0/g/DCMD/n/+", "spBv1.0/g/NCMD/n", false},
	} {
		if got := Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v; want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range [][]byte{
		{0x20, 2, 0, 0},
		{0x32, 8, 0, 3, 'a', '/', 'b', 0, 7, 'x'},
		{0x90, 4, 0, 9, 1, 0x80},
		{0x40, 2, 0x12, 0x34, 0xd0, 0},
		{0x30, 0xff, 0xff, 0xff, 0x7f},
	} {
		f.Add(s)
	}
	const max = 1024
	f.Fuzz(func(t *testing.T, wire []byte) {
		r := &reader{r: bufio.NewReader(bytes.NewReader(wire)), max: max}
		for {
			p, err := r.next()
			if err != nil {
				return
			}
			if 1+len(p.body) > max {
				t.Fatalf("a packet of %d bytes passed the %d byte limit", len(p.body), max)
			}
			parseConnack(p)
			parseID(p)
			parseSuback(p)
			if m, id, err := parsePublish(p); err == nil {
				if (m.QoS == 1) != (id != 0) || checkTopic(m.Topic) != nil {
					t.Fatalf("PUBLISH accepted: %+v id %d", m, id)
				}
				// What was read encodes back to the same bytes.
				again := append(appendPublishHeader(nil, m.Topic, m.QoS, m.Retained, id, len(m.Payload)), m.Payload...)
				again[0] |= p.flags & 8
				if _, err := read(again, max); err != nil {
					t.Fatalf("re-encoded PUBLISH unreadable: %v", err)
				}
			}
		}
	})
}
