package aether

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Message
	}{
		{`{"msg_type":"msg","target":"group","msg":"Hello team!"}`,
			Message{MsgType: "msg", Target: "group", Msg: "Hello team!"}},
		{`{"msg_type":"msg","target":"direct","to_id":"target_client_random_id","msg":"hi"}`,
			Message{MsgType: "msg", Target: "direct", ToID: "target_client_random_id", Msg: "hi"}},
		{`{"msg_type":"cmd","target":"broadcast","cmd":"MAINTENANCE_WARNING"}`,
			Message{MsgType: "cmd", Target: "broadcast", Cmd: "MAINTENANCE_WARNING"}},
		{`{"msg_type":"msg","target":"echo","msg":"Ping!"}`,
			Message{MsgType: "msg", Target: "echo", Msg: "Ping!"}},
		{`{"msg_type":"cmd","target":"group","cmd":"RELOAD_UI","payload":{"force":true}}`,
			Message{MsgType: "cmd", Target: "group", Cmd: "RELOAD_UI", Payload: json.RawMessage(`{"force":true}`)}},
		{` {"msg_type":"heartbeat","target":"echo"} `,
			Message{MsgType: "heartbeat", Target: "echo"}},
		{`{"version":"3","msg_type":"presence","target":"group","from_id":"a","group_id":"g-1","sent_at":"2026-11-23T09:00:00.000Z","payload":null,"to_id":null}`,
			Message{Version: "3", MsgType: "presence", Target: "group", FromID: "a", GroupID: "g-1", SentAt: "2026-11-23T09:00:00.000Z"}},
	} {
		got, err := Decode([]byte(tc.in))
		if err != nil {
			t.Errorf("Decode(%s): %v", tc.in, err)
			continue
		}
		if !equal(got, tc.want) {
			t.Errorf("Decode(%s) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestDecodeInvalid(t *testing.T) {
	for _, tc := range []struct {
		in, field, reason string
	}{
		{``, "", "truncated"},
		{`[]`, "", "not a JSON object"},
		{`"msg"`, "", "not a JSON object"},
		{`{"msg_type":"msg","target":"group"`, "", "truncated"},
		{`{"msg_type":"msg","target":"group"} {}`, "", "data after"},
		{`{"msg_type":"msg","target":"group",}`, "", "not valid JSON"},
		{`{"target":"group"}`, "msg_type", "required"},
		{`{"msg_type":"note","target":"group"}`, "msg_type", "must be msg, cmd"},
		{`{"msg_type":"msg"}`, "target", "required"},
		{`{"msg_type":"msg","target":"everyone"}`, "target", "must be direct"},
		{`{"msg_type":"msg","target":"direct"}`, "to_id", "required for target direct"},
		{`{"msg_type":"msg","target":"group","to_id":"x"}`, "to_id", "only allowed with target direct"},
		{`{"msg_type":"msg","target":"direct","to_id":"a b"}`, "to_id", "only letters"},
		{`{"msg_type":"msg","target":"direct","to_id":"` + strings.Repeat("x", 65) + `"}`, "to_id", "longer than 64"},
		{`{"msg_type":"msg","target":"group","from_id":"é"}`, "from_id", "only letters"},
		{`{"msg_type":"msg","target":"group","group_id":"g/1"}`, "group_id", "only letters"},
		{`{"msg_type":"cmd","target":"group"}`, "cmd", "required for msg_type cmd"},
		{`{"msg_type":"cmd","target":"group","cmd":"A B"}`, "cmd", "spaces"},
		{`{"msg_type":"msg","target":"group","payload":[1]}`, "payload", "must be a JSON object, got an array"},
		{`{"msg_type":"msg","target":"group","payload":"x"}`, "payload", "must be a JSON object, got a string"},
		{`{"msg_type":"msg","target":"group","msg":42}`, "msg", "must be a string, got a number"},
		{`{"msg_type":true,"target":"group"}`, "msg_type", "must be a string, got a boolean"},
		{`{"msg_type":"msg","target":"group","version":"2"}`, "version", `must be "3"`},
		{`{"msg_type":"msg","target":"group","sent_at":"yesterday"}`, "sent_at", "RFC 3339"},
		{`{"msg_type":"msg","target":"group","color":"red"}`, "color", "unknown field"},
		{`{"MSG_TYPE":"msg","target":"group"}`, "MSG_TYPE", "unknown field"},
		{`{"msg_type":"msg","msg_type":"cmd","target":"group"}`, "msg_type", "more than once"},
	} {
		_, err := Decode([]byte(tc.in))
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(%s) = %v, want a *FieldError wrapping ErrInvalid", tc.in, err)
			continue
		}
		if fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
			t.Errorf("Decode(%s) = field %q reason %q, want field %q reason containing %q", tc.in, fe.Field, fe.Reason, tc.field, tc.reason)
		}
		if !strings.HasPrefix(err.Error(), "aether: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"a", "Z", "0", "group_abc123", "device-xyz789", strings.Repeat("a", 64)} {
		if err := ValidID(id); err != nil {
			t.Errorf("ValidID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", strings.Repeat("a", 65), "a.b", "a b", "a/b", "ä", "a\x00", "$server"} {
		if err := ValidID(id); !errors.Is(err, ErrBadID) {
			t.Errorf("ValidID(%q) = %v, want ErrBadID", id, err)
		}
	}
}

func TestErrorEnvelope(t *testing.T) {
	_, err := Decode([]byte(`{"msg_type":"msg","target":"direct"}`))
	env := ErrorEnvelope(CodeInvalidMessage, err)
	env.Stamp(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatalf("error envelope %s does not decode: %v", b, err)
	}
	if back.Cmd != CmdError || back.Target != TargetEcho || back.SentAt != "2026-11-23T09:00:00.000Z" || back.Version != "3" {
		t.Errorf("envelope = %s", b)
	}
	var p ErrorPayload
	if err := json.Unmarshal(back.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Code != CodeInvalidMessage || p.Field != "to_id" || !strings.Contains(p.Error, "required for target direct") {
		t.Errorf("payload = %+v", p)
	}
}

func TestEncodeRefusesNonObjectPayload(t *testing.T) {
	m := Message{MsgType: TypeMsg, Target: TargetGroup, Payload: json.RawMessage(`[1,2]`)}
	if _, err := m.Encode(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Encode = %v, want ErrInvalid", err)
	}
}

func equal(a, b Message) bool {
	return a.Version == b.Version && a.MsgType == b.MsgType && a.Target == b.Target &&
		a.FromID == b.FromID && a.ToID == b.ToID && a.GroupID == b.GroupID &&
		a.Cmd == b.Cmd && a.Msg == b.Msg && a.SentAt == b.SentAt && bytes.Equal(a.Payload, b.Payload)
}

// FuzzDecode checks that Decode never panics, that whatever it accepts
// passes Validate, and that an accepted envelope survives Encode/Decode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"msg_type":"msg","target":"group","msg":"Hello team!"}`,
		`{"msg_type":"msg","target":"direct","to_id":"x","msg":"hi","payload":{"a":[1,{"b":null}]}}`,
		`{"msg_type":"cmd","target":"broadcast","cmd":"MAINTENANCE_WARNING"}`,
		`{"msg_type":"heartbeat","target":"echo","sent_at":"2026-11-23T09:00:00Z","version":"3"}`,
		`{"msg_type":"msg","msg_type":"msg"}`,
		`{"msg":"\u00e9\ud83d\ude00"}`,
		`[`, `{`, `{"a"`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted %q but Validate = %v", data, err)
		}
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode of accepted %q: %v", data, err)
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		// Payload bytes may be re-indented by json.Marshal's compaction.
		var c1, c2 bytes.Buffer
		json.Compact(&c1, m.Payload)
		json.Compact(&c2, back.Payload)
		m.Payload, back.Payload = c1.Bytes(), c2.Bytes()
		if !equal(m, back) {
			t.Fatalf("round trip changed %+v into %+v", m, back)
		}
	})
}

func TestCommandArgsAndReply(t *testing.T) {
	req, err := Decode([]byte(`{"msg_type":"cmd","target":"direct","to_id":"gw","from_id":"hmi-1","cmd":"READ_NOW","payload":{"device_id":1,"request_id":"r-7"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if CommandName(req.Cmd) != "read_now" {
		t.Errorf("CommandName = %q", CommandName(req.Cmd))
	}
	args, id := CommandArgs(&req)
	if string(args) != `{"device_id":1}` || string(id) != `"r-7"` {
		t.Errorf("CommandArgs = %s, %s", args, id)
	}
	rep := Reply(&req, id, map[string]int{"value": 3}, "", nil)
	rep.Stamp(time.Now())
	b, err := rep.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatalf("reply %s: %v", b, err)
	}
	if back.Target != TargetDirect || back.ToID != "hmi-1" || back.Cmd != CmdResult {
		t.Errorf("reply = %s", b)
	}
	if !strings.Contains(string(back.Payload), `"ok":true`) || !strings.Contains(string(back.Payload), `"request_id":"r-7"`) {
		t.Errorf("reply payload = %s", back.Payload)
	}
	fail := Reply(&Message{MsgType: TypeCmd, Target: TargetGroup, Cmd: "nope"}, nil, nil, CodeUnknownCommand, errors.New("no such command"))
	if fail.Target != TargetGroup || !strings.Contains(string(fail.Payload), `"error":"unknown_command"`) {
		t.Errorf("failure reply = %+v %s", fail, fail.Payload)
	}
	if a, id := CommandArgs(&Message{Payload: json.RawMessage(`{"request_id":1}`)}); a != nil || string(id) != "1" {
		t.Errorf("CommandArgs of a lone request_id = %s, %s", a, id)
	}
}
