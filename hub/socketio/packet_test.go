package socketio

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestDecodePacket(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Packet
		bad  bool
	}{
		{in: "0", want: Packet{Type: Connect, Namespace: "/"}},
		{in: `0{"token":"123"}`, want: Packet{Type: Connect, Namespace: "/", Data: json.RawMessage(`{"token":"123"}`)}},
		{in: "0/custom,", want: Packet{Type: Connect, Namespace: "/custom"}},
		{in: "0/custom", want: Packet{Type: Connect, Namespace: "/custom"}},
		{in: `0/custom,{"token":"abc"}`, want: Packet{Type: Connect, Namespace: "/custom", Data: json.RawMessage(`{"token":"abc"}`)}},
		{in: "1", want: Packet{Type: Disconnect, Namespace: "/"}},
		{in: "1/custom,", want: Packet{Type: Disconnect, Namespace: "/custom"}},
		{in: `2["message",1,"2",{"3":[true]}]`, want: Packet{Type: Event, Namespace: "/", Data: json.RawMessage(`["message",1,"2",{"3":[true]}]`)}},
		{in: `2456["message-with-ack",1]`, want: Packet{Type: Event, Namespace: "/", ID: 456, HasID: true, Data: json.RawMessage(`["message-with-ack",1]`)}},
		{in: `2/admin,12["x"]`, want: Packet{Type: Event, Namespace: "/admin", ID: 12, HasID: true, Data: json.RawMessage(`["x"]`)}},
		{in: `2[7]`, want: Packet{Type: Event, Namespace: "/", Data: json.RawMessage(`[7]`)}},
		{in: `3456[1,"2"]`, want: Packet{Type: Ack, Namespace: "/", ID: 456, HasID: true, Data: json.RawMessage(`[1,"2"]`)}},
		{in: `3456[]`, want: Packet{Type: Ack, Namespace: "/", ID: 456, HasID: true, Data: json.RawMessage(`[]`)}},
		{in: `4{"message":"no"}`, want: Packet{Type: ConnectError, Namespace: "/", Data: json.RawMessage(`{"message":"no"}`)}},
		{in: `52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, want: Packet{Type: BinaryEvent, Namespace: "/", Attachments: 2, Data: json.RawMessage(`["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)}},
		{in: `61-/admin,789[{"_placeholder":true,"num":0}]`, want: Packet{Type: BinaryAck, Namespace: "/admin", Attachments: 1, ID: 789, HasID: true, Data: json.RawMessage(`[{"_placeholder":true,"num":0}]`)}},

		{in: "", bad: true},
		{in: "abc", bad: true},
		{in: "7", bad: true},
		{in: "/", bad: true},
		{in: "0abc", bad: true},
		{in: `0"str"`, bad: true},
		{in: `0[1]`, bad: true},
		{in: `1{}`, bad: true},
		{in: `2{}`, bad: true},
		{in: `2[]`, bad: true},
		{in: `2abc["message-with-ack",1]`, bad: true},
		{in: `2[true]`, bad: true},
		{in: `2["connect"]`, bad: true},
		{in: `2["disconnect"]`, bad: true},
		{in: `2["x"`, bad: true},
		{in: `3{}`, bad: true},
		{in: `3`, bad: true},
		{in: `4[]`, bad: true},
		{in: `5["x"]`, bad: true},
		{in: `5-["x"]`, bad: true},
		{in: `5a-["x"]`, bad: true},
		{in: `511-["x"]`, bad: true},
		{in: `599999-["x"]`, bad: true},
		{in: `21234567890123456["x"]`, bad: true},
	} {
		got, err := DecodePacket([]byte(tc.in), 10)
		if tc.bad {
			if !errors.Is(err, ErrPacket) {
				t.Errorf("DecodePacket(%q) = %+v, %v; want an ErrPacket", tc.in, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DecodePacket(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestAppendPacket(t *testing.T) {
	for _, tc := range []struct {
		p    Packet
		want string
	}{
		{Packet{Type: Connect, Namespace: "/", Data: json.RawMessage(`{"sid":"x"}`)}, `0{"sid":"x"}`},
		{Packet{Type: Connect, Namespace: "/custom", Data: json.RawMessage(`{"sid":"x"}`)}, `0/custom,{"sid":"x"}`},
		{Packet{Type: ConnectError, Namespace: "/random", Data: json.RawMessage(`{"message":"Invalid namespace"}`)}, `4/random,{"message":"Invalid namespace"}`},
		{Packet{Type: Disconnect, Namespace: "/"}, `1`},
		{Packet{Type: Event, Data: json.RawMessage(`["a"]`)}, `2["a"]`},
		{Packet{Type: Ack, ID: 456, HasID: true, Data: json.RawMessage(`[1]`)}, `3456[1]`},
		{Packet{Type: BinaryAck, ID: 789, HasID: true, Attachments: 2, Data: json.RawMessage(`[]`)}, `62-789[]`},
		{Packet{Type: BinaryEvent, Namespace: "/a", Attachments: 1, Data: json.RawMessage(`[]`)}, `51-/a,[]`},
	} {
		if got := string(AppendPacket(nil, tc.p)); got != tc.want {
			t.Errorf("AppendPacket(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestArgs(t *testing.T) {
	data := json.RawMessage(`["message",{"_placeholder":true,"num":1},{"x":[{"_placeholder":true,"num":0}]},1.5,"<&>"]`)
	args, err := DecodeArgs(data, [][]byte{{1}, {2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"message", []byte{2, 3}, map[string]any{"x": []any{[]byte{1}}}, json.Number("1.5"), "<&>"}
	if !reflect.DeepEqual(args, want) {
		t.Fatalf("DecodeArgs = %#v, want %#v", args, want)
	}
	enc, atts, err := EncodeArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	if string(enc) != `["message",{"_placeholder":true,"num":0},{"x":[{"_placeholder":true,"num":1}]},1.5,"<&>"]` || !reflect.DeepEqual(atts, [][]byte{{2, 3}, {1}}) {
		t.Fatalf("EncodeArgs = %s %v", enc, atts)
	}
	raw, _, _ := EncodeArgs([]any{"auth", json.RawMessage(`{"token":"123"}`)})
	if string(raw) != `["auth",{"token":"123"}]` {
		t.Fatalf("EncodeArgs kept no RawMessage: %s", raw)
	}
	for _, bad := range []struct {
		data string
		n    int
	}{
		{`[{"_placeholder":true,"num":2}]`, 2},
		{`[{"_placeholder":true,"num":-1}]`, 2},
		{`[{"_placeholder":true,"num":"0"}]`, 2},
		{`[{"_placeholder":true}]`, 2},
		{`{}`, 0},
	} {
		if _, err := DecodeArgs(json.RawMessage(bad.data), make([][]byte, bad.n)); !errors.Is(err, ErrPacket) {
			t.Errorf("DecodeArgs(%s) = %v, want an ErrPacket", bad.data, err)
		}
	}
}

// Whatever decodes encodes back to a packet that decodes the same, and
// never announces more attachments than allowed.
func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{"0", `0{"token":"123"}`, "0/custom,", "0/custom", "1", `2["message",1,"2",{"3":[true]}]`, `2456["a"]`, `3456[1]`,
		`52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, `62-789[{"_placeholder":true,"num":0}]`, "abc", "2{}", `2abc["x"]`, `5999-["x"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := DecodePacket(in, 10)
		if err != nil {
			if !errors.Is(err, ErrPacket) {
				t.Fatalf("DecodePacket(%q): error %v is not an ErrPacket", in, err)
			}
			return
		}
		if p.Attachments > 10 {
			t.Fatalf("DecodePacket(%q): %d attachments", in, p.Attachments)
		}
		again, err := DecodePacket(AppendPacket(nil, p), 10)
		if err != nil {
			t.Fatalf("re-decoding %q (from %q): %v", AppendPacket(nil, p), in, err)
		}
		if again.Type != p.Type || again.Namespace != p.Namespace || again.ID != p.ID || again.HasID != p.HasID || again.Attachments != p.Attachments || string(again.Data) != string(p.Data) {
			t.Fatalf("round trip of %q: %+v, was %+v", in, again, p)
		}
		if p.Type == Event || p.Type == BinaryEvent || p.Type == Ack || p.Type == BinaryAck {
			atts := make([][]byte, p.Attachments)
			if args, err := DecodeArgs(p.Data, atts); err == nil {
				if _, _, err := EncodeArgs(args); err != nil {
					t.Fatalf("EncodeArgs of %q's arguments: %v", in, err)
				}
			} else if !errors.Is(err, ErrPacket) {
				t.Fatalf("DecodeArgs(%q): error %v is not an ErrPacket", p.Data, err)
			}
		}
	})
}
