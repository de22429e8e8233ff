package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/internal/testkit"
)

// passwd runs `agent passwd` with the password on stdin (not a terminal)
// and checks the hash's form: PBKDF2-SHA256, 600,000 rounds.
func passwd(t *testing.T, bin, pw string) string {
	t.Helper()
	h := testkit.AgentPasswordHash(t, bin, pw)
	if !strings.HasPrefix(h, "$pbkdf2-sha256$i=600000$") || len(h) != 90 {
		t.Fatalf("agent passwd printed %q", h)
	}
	return h
}

// httpDo sends a request with the session cookie (if any) and decodes a
// JSON answer.
func httpDo(t *testing.T, method, url, body, cookie string) (int, map[string]any, []*http.Cookie) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		req.Header.Set("Cookie", "floorhub_session="+cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, resp.Cookies()
}

func loginAgent(t *testing.T, addr, user, pw string) string {
	t.Helper()
	code, m, cs := httpDo(t, "POST", "http://"+addr+"/api/v1/login", `{"user":"`+user+`","password":"`+pw+`"}`, "")
	if code != 200 || len(cs) != 1 || cs[0].Name != "floorhub_session" {
		t.Fatalf("login %s: %d %v %v", user, code, m, cs)
	}
	return cs[0].Value
}

// dialCookie opens /ws with a session cookie and reads the auth_response.
func dialCookie(t *testing.T, addr, cookie, role string) *websocket.Conn {
	t.Helper()
	hdr := http.Header{"Cookie": {"floorhub_session=" + cookie}, "Origin": {"http://" + addr}}
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", hdr)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial with a cookie: %v (HTTP %d)", err, code)
	}
	t.Cleanup(func() { ws.Close() })
	var m map[string]any
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.ReadJSON(&m); err != nil || m["type"] != "auth_response" || m["role"] != role {
		t.Fatalf("auth by cookie: %v %v (want role %s)", m, err, role)
	}
	return ws
}

// readUntil reads messages until one has type typ (others, such as
// telemetry, are skipped).
func readUntil(t *testing.T, ws *websocket.Conn, typ string) map[string]any {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if m["type"] == typ {
			return m
		}
	}
}

// The login as a kiosk lives it, through the real binary: users made with
// `agent passwd`, a cookie login, roles enforced over /ws, a session that
// survives kill -9 and a restart, and one that ends when a SIGHUP reload
// removes its user (its open dashboard is told session_expired, 1008).
func TestLoginThroughTheAgent(t *testing.T) {
	bin := testkit.BuildAgent(t)
	dir := t.TempDir()
	kiosk, ada := passwd(t, bin, "kiosk pw"), passwd(t, bin, "ada-pw")
	head := "devices:\n  - {id: 1, name: env, driver: sim-env, interval: 200ms}\nusers:\n"
	adaLine := "  - {name: ada, id: 1, role: admin, password_hash: \"" + ada + "\"}\n"
	kioskLine := "  - {name: kiosk, id: 2, role: viewer, password_hash: \"" + kiosk + "\"}\n"
	write := func(body string) string { return testkit.WriteAgentConfig(t, dir, testkit.AnyPort, head+body) }
	path := write(adaLine + kioskLine)
	if code, out, errs := runCmd("-check-config", "-config", path); code != 0 {
		t.Fatalf("-check-config: %d %s %s", code, out, errs)
	}
	p := testkit.StartAgent(t, bin, dir, "-config", path)
	base := "http://" + p.Addr

	if code, m, _ := httpDo(t, "POST", base+"/api/v1/login", `{"user":"kiosk","password":"wrong"}`, ""); code != 401 || m["error"] != "bad_credentials" {
		t.Fatalf("wrong password: %d %v", code, m)
	}
	k := loginAgent(t, p.Addr, "kiosk", "kiosk pw")
	if code, m, _ := httpDo(t, "GET", base+"/api/v1/session", "", k); code != 200 || m["user"] != "kiosk" || m["role"] != "viewer" {
		t.Fatalf("session: %d %v", code, m)
	}
	now := time.Now().UTC()
	hist := base + "/api/v1/history?device_id=1&metric=temperature&from=" + now.Add(-time.Hour).Format(time.RFC3339) + "&to=" + now.Format(time.RFC3339)
	if code, m, _ := httpDo(t, "GET", hist, "", k); code != 200 {
		t.Fatalf("history with the cookie: %d %v", code, m)
	}
	if code, _, _ := httpDo(t, "GET", hist, "", ""); code != 401 {
		t.Fatalf("history without: %d", code)
	}

	ws := dialCookie(t, p.Addr, k, "viewer")
	ws.WriteJSON(map[string]any{"type": "command", "command": "ping"})
	if m := readUntil(t, ws, "error"); m["error"] != "forbidden" {
		t.Fatalf("a viewer's command: %v", m)
	}
	a := loginAgent(t, p.Addr, "ada", "ada-pw")
	aws := dialCookie(t, p.Addr, a, "admin")
	aws.WriteJSON(map[string]any{"type": "command", "command": "ping", "request_id": 5})
	if m := readUntil(t, aws, "command_result"); m["request_id"] != float64(5) || m["result"].(map[string]any)["pong"] != true {
		t.Fatalf("an admin's command: %v", m)
	}

	// kill -9, start again: the kiosk's cookie still works.
	ws.Close()
	aws.Close()
	p.Kill(t)
	p = testkit.StartAgent(t, bin, dir, "-config", path)
	base = "http://" + p.Addr
	if code, m, _ := httpDo(t, "GET", base+"/api/v1/session", "", k); code != 200 || m["user"] != "kiosk" {
		t.Fatalf("after kill -9 and a restart: %d %v", code, m)
	}

	// The kiosk user removed by a reload: its open dashboard is closed
	// and its cookie refused; ada's session goes on.
	ws = dialCookie(t, p.Addr, k, "viewer")
	write(adaLine)
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := readUntil(t, ws, "error"); m["error"] != "session_expired" {
		t.Fatalf("open dashboard of a removed user: %v", m)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("close: %v, want 1008", err)
			}
			break
		}
	}
	if code, m, _ := httpDo(t, "GET", base+"/api/v1/session", "", k); code != 401 || m["error"] != "session_expired" {
		t.Fatalf("removed user's session: %d %v", code, m)
	}
	if code, _, _ := httpDo(t, "GET", base+"/api/v1/session", "", a); code != 200 {
		t.Fatalf("ada's session after the reload: %d", code)
	}
	if c := p.Stop(t); c != 0 {
		t.Fatalf("exit %d:\n%s", c, p.Log)
	}
}
