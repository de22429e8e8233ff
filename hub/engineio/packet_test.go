package engineio

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestDecodePayload(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want []Packet
		bad  bool
	}{
		{name: "one text", in: "4hello", want: []Packet{{Type: Msg, Data: []byte("hello")}}},
		{name: "several", in: "4a\x1e4b\x1e3", want: []Packet{{Type: Msg, Data: []byte("a")}, {Type: Msg, Data: []byte("b")}, {Type: Pong, Data: []byte{}}}},
		{name: "binary", in: "4hello\x1ebAQIDBA==", want: []Packet{{Type: Msg, Data: []byte("hello")}, {Type: Msg, Data: []byte{1, 2, 3, 4}, Binary: true}}},
		{name: "empty binary", in: "b", want: []Packet{{Type: Msg, Data: []byte{}, Binary: true}}},
		{name: "close", in: "1", want: []Packet{{Type: Close, Data: []byte{}}}},
		{name: "empty message", in: "4", want: []Packet{{Type: Msg, Data: []byte{}}}},
		{name: "unknown type", in: "abc", bad: true},
		{name: "type 7", in: "7x", bad: true},
		{name: "empty payload", in: "", bad: true},
		{name: "empty element", in: "4a\x1e", bad: true},
		{name: "leading separator", in: "\x1e4a", bad: true},
		{name: "bad base64", in: "b!!!", bad: true},
		{name: "too many packets", in: "4a\x1e4b\x1e4c", max: 2, bad: true},
		{name: "at the packet limit", in: "4a\x1e4b", max: 2, want: []Packet{{Type: Msg, Data: []byte("a")}, {Type: Msg, Data: []byte("b")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePayload([]byte(tc.in), tc.max)
			if tc.bad {
				if !errors.Is(err, ErrPacket) {
					t.Fatalf("DecodePayload(%q) = %v, %v; want an ErrPacket", tc.in, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("DecodePayload(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestAppendPayload(t *testing.T) {
	for _, tc := range []struct {
		in   []Packet
		want string
	}{
		{[]Packet{{Type: Open, Data: []byte(`{"sid":"x"}`)}}, `0{"sid":"x"}`},
		{[]Packet{{Type: Msg, Data: []byte("hello")}, {Type: Msg, Data: []byte{1, 2, 3, 4}, Binary: true}}, "4hello\x1ebAQIDBA=="},
		{[]Packet{{Type: Ping}, {Type: Noop}, {Type: Close}}, "2\x1e6\x1e1"},
	} {
		if got := string(AppendPayload(nil, tc.in)); got != tc.want {
			t.Errorf("AppendPayload(%+v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Whatever decodes, encodes back to the same payload.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"4hello", "4a\x1e4b\x1e3", "4hello\x1ebAQIDBA==", "b", "1", "abc", "", "4a\x1e", "b!!!", "2probe", "6\x1e6", "bAQ"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		pkts, err := DecodePayload(in, 64)
		if err != nil {
			if !errors.Is(err, ErrPacket) {
				t.Fatalf("DecodePayload(%q): error %v is not an ErrPacket", in, err)
			}
			return
		}
		if len(pkts) == 0 || len(pkts) > 64 {
			t.Fatalf("DecodePayload(%q): %d packets", in, len(pkts))
		}
		again, err := DecodePayload(AppendPayload(nil, pkts), 64)
		if err != nil || len(again) != len(pkts) {
			t.Fatalf("re-decoding %q: %v, %d packets, want %d", AppendPayload(nil, pkts), err, len(again), len(pkts))
		}
		for i := range pkts {
			if again[i].Type != pkts[i].Type || again[i].Binary != pkts[i].Binary || !bytes.Equal(again[i].Data, pkts[i].Data) {
				t.Fatalf("packet %d: %+v after a round trip, was %+v", i, again[i], pkts[i])
			}
		}
	})
}
