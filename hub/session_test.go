package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/session"
	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

// roleCommander runs read_now, and roleAcker acknowledges any alert, for
// the role checks.
type roleCommander struct{}

func (roleCommander) Command(ctx context.Context, name string, args json.RawMessage) (any, error) {
	if name == "read_now" {
		return map[string]string{"ran": name}, nil
	}
	return nil, fmt.Errorf("%w: %q", command.ErrUnknownCommand, name)
}

type roleAcker struct{}

func (roleAcker) AckAlert(ctx context.Context, id uint64, user, note string) (store.Record, error) {
	return store.Record{Seq: 99, Kind: store.KindAlertAck, TS: t0, Ack: &store.AlertAck{By: user, Note: note}}, nil
}

// sessionHub is a hub whose Auth is a real session manager, its login
// endpoint served beside /ws on the same server.
type sessionHub struct {
	*testHub
	m *session.Manager
}

func newSessionHub(t *testing.T) *sessionHub {
	t.Helper()
	sh := &sessionHub{}
	var users []session.User
	for i, u := range []struct {
		name string
		role auth.Role
	}{{"victor", auth.RoleViewer}, {"olga", auth.RoleOperator}, {"ada", auth.RoleAdmin}} {
		h, err := auth.HashPasswordRounds([]byte(u.name+"-pw"), 1000)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, session.User{Name: u.name, ID: int64(i + 1), Role: u.role, PasswordHash: h})
	}
	clk := testkit.NewClock(time.Now())
	th := newTestHub(t, limitless, func(o *Options) {
		o.Now = clk.Now
		m, err := session.Open(session.Options{Dir: t.TempDir(), TTL: time.Hour, Verifier: o.Verifier,
			Now: clk.Now, Logger: slog.New(slog.DiscardHandler)}, users)
		if err != nil {
			t.Fatal(err)
		}
		sh.m = m
		o.Auth, o.Commander, o.Acker = m, roleCommander{}, roleAcker{}
	})
	th.now = clk
	sh.testHub = th
	return sh
}

// login logs user in over HTTP (the real endpoint) and returns the header
// that carries its cookie.
func (sh *sessionHub) login(t *testing.T, user string) http.Header {
	t.Helper()
	srv := http.NewServeMux()
	srv.HandleFunc("POST /login", sh.m.ServeLogin)
	rec := &headerRecorder{h: http.Header{}}
	req, _ := http.NewRequest("POST", "/login", strings.NewReader(`{"user":"`+user+`","password":"`+user+`-pw"}`))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "127.0.0.1:1"
	srv.ServeHTTP(rec, req)
	if rec.code != 200 {
		t.Fatalf("login %s: %d", user, rec.code)
	}
	resp := http.Response{Header: rec.h}
	for _, c := range resp.Cookies() {
		if c.Name == session.CookieName {
			return http.Header{"Cookie": {c.Name + "=" + c.Value}}
		}
	}
	t.Fatal("no cookie")
	return nil
}

type headerRecorder struct {
	h    http.Header
	code int
}

func (r *headerRecorder) Header() http.Header         { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(code int)        { r.code = code }

// dialSession connects with the session's cookie; the hub authenticates it
// at once.
func (sh *sessionHub) dialSession(t *testing.T, hdr http.Header, role string) *tclient {
	t.Helper()
	c := sh.dial(t, "/ws", hdr)
	if m := c.read(); m["type"] != "auth_response" || m["success"] != true || m["role"] != role {
		t.Fatalf("auth by cookie: %v (want role %s)", m, role)
	}
	return c
}

// Over the socket: a viewer reads but may not acknowledge (the ack_alert
// message) nor run a command; an operator acknowledges but runs no
// command; an admin does both. Tokens with a role claim are held to it
// the same way.
func TestRolesOverWebSocket(t *testing.T) {
	sh := newSessionHub(t)
	for _, tc := range []struct {
		user, role   string
		ack, command bool
	}{
		{"victor", "viewer", false, false},
		{"olga", "operator", true, false},
		{"ada", "admin", true, true},
	} {
		t.Run(tc.user, func(t *testing.T) {
			c := sh.dialSession(t, sh.login(t, tc.user), tc.role)
			c.send(map[string]any{"type": "subscribe", "channel": "alerts"})
			c.readType("subscribed")
			forbidden := func(m map[string]any, request string) {
				t.Helper()
				if m["type"] != "error" || m["error"] != "forbidden" || m["request"] != request ||
					!strings.HasPrefix(m["message"].(string), tc.role+" may not ") {
					t.Fatalf("%s by %s: %v (want forbidden)", request, tc.role, m)
				}
			}
			c.send(map[string]any{"type": "ack_alert", "alert_id": 1, "note": "fan replaced"})
			if m := c.read(); !tc.ack {
				forbidden(m, "ack_alert")
			} else if m["type"] != "ack_alert_response" || m["acknowledged_by"] != tc.user {
				t.Fatalf("ack_alert by %s: %v", tc.role, m)
			}
			c.send(map[string]any{"type": "command", "command": "read_now", "args": map[string]any{"device_id": 1}, "request_id": "r1"})
			if m := c.read(); !tc.command {
				forbidden(m, "command")
			} else if m["type"] != "command_result" || m["request_id"] != "r1" || m["result"].(map[string]any)["ran"] != "read_now" {
				t.Fatalf("read_now by %s: %v", tc.role, m)
			}
			c.send(map[string]any{"type": "ping"}) // still connected, still reading
			c.readType("pong")
		})
	}
	// A token with a role claim is held to it the same way.
	tok, err := auth.Mint(testSecret, "kiosk-7", time.Hour, auth.Claims{Role: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	c := sh.dial(t, "/ws?token="+tok, nil)
	if m := c.read(); m["role"] != "viewer" {
		t.Fatalf("token auth: %v", m)
	}
	c.send(map[string]any{"type": "batch", "messages": []any{map[string]any{"type": "command", "command": "read_now"}}})
	if m := c.read(); m["error"] != "forbidden" {
		t.Fatalf("a command in a batch: %v", m)
	}
	c.send(map[string]any{"type": "ack_alert", "alert_id": 1})
	if m := c.read(); m["type"] != "error" || m["error"] != "forbidden" || m["request"] != "ack_alert" {
		t.Fatalf("ack_alert by a viewer's token: %v", m)
	}
	tok, err = auth.Mint(testSecret, "op-9", time.Hour, auth.Claims{Role: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	c = sh.dial(t, "/ws?token="+tok, nil)
	if m := c.read(); m["role"] != "operator" {
		t.Fatalf("token auth: %v", m)
	}
	c.send(map[string]any{"type": "ack_alert", "alert_id": 1})
	if m := c.read(); m["type"] != "ack_alert_response" || m["acknowledged_by"] != "op-9" {
		t.Fatalf("ack_alert by an operator's token: %v", m)
	}
	// A token without one is an admin, as tokens were before roles.
	c = sh.dial(t, "/ws?token="+token(t, "legacy"), nil)
	if m := c.read(); m["role"] != "admin" {
		t.Fatalf("legacy token: %v", m)
	}
}

// A cookie naming no live session is refused before the upgrade (the page
// then goes to its login screen); a session cookie from another origin is
// refused even where "*" allows any origin for tokens.
func TestSessionCookieRefusals(t *testing.T) {
	sh := newSessionHub(t)
	if code := sh.dialStatus(t, "/ws", http.Header{"Cookie": {session.CookieName + "=forged"}}); code != http.StatusUnauthorized {
		t.Fatalf("forged cookie: HTTP %d", code)
	}
	hdr := sh.login(t, "victor")
	cross := hdr.Clone()
	cross.Set("Origin", "http://evil.example")
	if err := sh.SetLimits(wsconn.Options{AllowedOrigins: []string{"*"}, ConnectsPerMinute: -1}, 0); err != nil {
		t.Fatal(err)
	}
	tok := cross.Clone()
	tok.Del("Cookie")
	tok.Set("Authorization", "Bearer "+token(t, "x"))
	if code := sh.dialStatus(t, "/ws", tok); code != http.StatusSwitchingProtocols {
		t.Fatalf("a token from any origin (\"*\"): HTTP %d", code)
	}
	if code := sh.dialStatus(t, "/ws", cross); code != http.StatusForbidden {
		t.Fatalf("cross-origin cookie: HTTP %d", code)
	}
	same := hdr.Clone()
	same.Set("Origin", sh.srv.URL)
	sh.dialSession(t, same, "viewer")
}

// A session that ends while its WebSocket is open (logout elsewhere,
// expiry, user removed) closes it like an expired token: the error
// session_expired, then close 1008. An open one keeps its session alive.
func TestSessionEndsOnOpenSocket(t *testing.T) {
	sh := newSessionHub(t)
	kept := sh.dialSession(t, sh.login(t, "ada"), "admin")
	hdr := sh.login(t, "victor")
	c := sh.dialSession(t, hdr, "viewer")
	// Open for three hours (TTL 1 h): the open socket renews it. (A tick
	// is handled after the send returns, so it may see the next advance
	// too: steps of 20 min keep that within the TTL.)
	for range 9 {
		sh.now.Advance(20 * time.Minute)
		sh.tick <- time.Time{}
	}
	c.send(map[string]any{"type": "ping"})
	c.readType("pong")
	// Logged out from another tab: the session ends.
	cookie := strings.TrimPrefix(hdr.Get("Cookie"), session.CookieName+"=")
	if ok, err := sh.m.Logout(cookie); !ok || err != nil {
		t.Fatalf("logout: %v %v", ok, err)
	}
	sh.tick <- time.Time{}
	if m := c.read(); m["type"] != "error" || m["error"] != "session_expired" {
		t.Fatalf("after logout: %v", m)
	}
	if code, _ := c.closeCode(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close %d, want 1008", code)
	}
	// The user removed from the config: the same.
	if n, err := sh.m.SetUsers(nil); n != 1 || err != nil {
		t.Fatalf("SetUsers: %d %v", n, err)
	}
	sh.tick <- time.Time{}
	if m := kept.read(); m["error"] != "session_expired" {
		t.Fatalf("after removal: %v", m)
	}
	if code := sh.dialStatus(t, "/ws", hdr); code != http.StatusUnauthorized {
		t.Fatalf("reconnect after logout: HTTP %d, want 401", code)
	}
}

// The role check denies by default: only the listed request types are
// open, a type the check does not list is refused to every role.
func TestActionOfDeniesByDefault(t *testing.T) {
	for _, tc := range []struct {
		typ string
		a   auth.Action
		ok  bool
	}{
		{typeSubscribe, auth.Read, true},
		{typeUnsubscribe, auth.Read, true},
		{typeAckAlert, auth.Acknowledge, true},
		{typeCommand, auth.RunCommand, true},
		{"set_config", 0, false}, // a type added later, forgotten here
	} {
		if a, ok := actionOf(&request{typ: tc.typ}); a != tc.a || ok != tc.ok {
			t.Errorf("actionOf(%s) = %v %v, want %v %v", tc.typ, a, ok, tc.a, tc.ok)
		}
	}
}

// A viewer gets for a type the hub does not know the same unknown_type
// error as an admin (not forbidden, not served), and stays connected.
func TestUnknownTypeSameForEveryRole(t *testing.T) {
	sh := newSessionHub(t)
	for _, u := range []struct{ user, role string }{{"victor", "viewer"}, {"ada", "admin"}} {
		c := sh.dialSession(t, sh.login(t, u.user), u.role)
		c.send(map[string]any{"type": "reboot"})
		if m := c.read(); m["type"] != "error" || m["error"] != "unknown_type" || m["message"] != `unknown message type "reboot"` {
			t.Fatalf("reboot by %s: %v", u.role, m)
		}
		c.send(map[string]any{"type": "subscribe", "channel": "alerts"})
		c.readType("subscribed")
	}
}
